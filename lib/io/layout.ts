/**
 * Weight layout conversions between PyTorch and this project, shared by every model family.
 *
 * PyTorch stores a convolution `[out, in, kh, kw]` (OIHW) and a Linear `[out, in]`; tf wants `[kh, kw, in, out]`
 * (HWIO) and `[in, out]`, so that convolutions and matmuls run without transposes.
 */
import { numel } from "./tensor.ts";

/** OIHW `[O, I, P, Q]` data → HWIO `[P, Q, I, O]`. */
export function oihwToHwio(data: Float32Array, shape: readonly number[]): Float32Array {
  const [O, I, P, Q] = shape;
  const out = new Float32Array(numel(shape));
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < I; c++) {
      for (let i = 0; i < P; i++) {
        for (let j = 0; j < Q; j++) out[((i * Q + j) * I + c) * O + o] = data[((o * I + c) * P + i) * Q + j];
      }
    }
  }
  return out;
}

/** HWIO data → OIHW `shape` = `[O, I, P, Q]` (the inverse of `oihwToHwio`). */
export function hwioToOihw(data: Float32Array, shape: readonly number[]): Float32Array {
  const [O, I, P, Q] = shape;
  const out = new Float32Array(numel(shape));
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < I; c++) {
      for (let i = 0; i < P; i++) {
        for (let j = 0; j < Q; j++) out[((o * I + c) * P + i) * Q + j] = data[((i * Q + j) * I + c) * O + o];
      }
    }
  }
  return out;
}

/** `[rows, cols]` → `[cols, rows]`. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}
