/**
 * PyTorch (timm) weight layout ↔ this project's layout.
 *
 * Linear weights: timm `[out, in]` ↔ ours `[in, out]`, so the forward pass is `x·W` with no transpose.
 * Patch embedding: timm's conv `[D, C, p, p]` ↔ ours `[p·p·C, D]`, rows ordered (ph, pw, c) to match how
 * `patchEmbed` flattens an NHWC patch. Everything else is stored as timm stores it.
 */
import { numel } from "../io/tensor.ts";

const PATCH = "patch_embed.proj.weight";

function isLinearWeight(name: string, torchShape: readonly number[]): boolean {
  return name.endsWith(".weight") && torchShape.length === 2;
}

export function internalShape(name: string, torchShape: readonly number[]): number[] {
  if (name === PATCH) {
    const [D, C, ph, pw] = torchShape;
    return [ph * pw * C, D];
  }
  if (isLinearWeight(name, torchShape)) return [torchShape[1], torchShape[0]];
  return [...torchShape];
}

/** Reorders `data` (row-major, torch layout `torchShape`) into the internal layout. */
export function toInternal(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  if (name === PATCH) {
    const [D, C, P, Q] = torchShape;
    const out = new Float32Array(numel(torchShape));
    for (let d = 0; d < D; d++) {
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < Q; j++) {
            out[((i * Q + j) * C + c) * D + d] = data[((d * C + c) * P + i) * Q + j];
          }
        }
      }
    }
    return out;
  }
  if (isLinearWeight(name, torchShape)) return transpose2d(data, torchShape[0], torchShape[1]);
  return data;
}

/** Inverse of `toInternal`: internal data → torch layout `torchShape`. */
export function toTorch(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  if (name === PATCH) {
    const [D, C, P, Q] = torchShape;
    const out = new Float32Array(numel(torchShape));
    for (let d = 0; d < D; d++) {
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < Q; j++) {
            out[((d * C + c) * P + i) * Q + j] = data[((i * Q + j) * C + c) * D + d];
          }
        }
      }
    }
    return out;
  }
  if (isLinearWeight(name, torchShape)) return transpose2d(data, torchShape[1], torchShape[0]);
  return data;
}

/** `[rows, cols]` → `[cols, rows]`. */
function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}
