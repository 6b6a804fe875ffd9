/**
 * Kernel fixes for tfjs-backend-wasm 4.22.0.
 *
 * Transpose: the stock kernel moved ~25 M elements/s on the attention's 4- and 5-D permutations (a [128, 17,
 * 3, 2, 32] transpose took 19 ms; `tf.profile` of a training step of the micro DeiT put 54% of kernel time
 * there once the matmuls went through BLAS). This one works on heap views: when the last axis stays last it
 * copies whole rows, otherwise it walks the output with precomputed input strides.
 *
 * Slice: the stock kernel starts with `backend.readSync(x)`, which *copies the whole input* out of the wasm
 * heap before taking the slice, so slicing a 50×32 piece out of a [3200, 288] tensor costs ~1.8 ms (measured,
 * bench/NOTES.md) and a loop of per-head slices dominates attention. This kernel reads the input through a
 * view of the heap instead (no copy) and otherwise does the same: contiguous slices are one `set`, others copy
 * row by row. Registered over the stock kernel when the wasm backend is initialised.
 *
 * Identity: the stock kernel copies the tensor; tf calls it for every tensor a custom gradient saves (engine
 * `saveTensorsForBackwardMode` clones them: 203 copies in a `deit_mini_patch4_28` training step, 6% of its
 * kernel time). Tensors are immutable, so this one shares the data and counts a reference, as the cpu backend's
 * Identity and wasm's own Reshape do.
 *
 * Fused LayerNorm and GELU (new kernels `DeitLayerNorm`, `DeitLayerNormGrad`, `DeitGelu`, `DeitGeluGrad`, used
 * by lib/accel/ops.ts when {@link fusedKernelsActive} / {@link fusedGeluActive}): composed of tf ops LayerNorm is ~8
 * kernels forward and ~12 backward (moments, rsqrt, the column sums of the parameter gradients) and the exact
 * GELU 5 and 11, each a pass over the activations; libm's erf in the stock `Erf` alone was 12% of a step.
 * Both run as wasm-SIMD kernels (lib/accel/simd) — LayerNorm three passes over a row forward and two backward, GELU
 * one each way, keeping Φ(x) for the backward pass; LayerNorm over rows whose length is not a multiple of 4,
 * or where wasm SIMD is missing (or `DEIT_SIMD=off`), runs the JavaScript loops below, in double precision.
 */
import * as tf from "@tensorflow/tfjs";
import { envVar } from "../base/machine.ts";
import {
  geluBackward,
  geluForward,
  heapUsable,
  layerNormBackward,
  layerNormForward,
  simdSupported,
} from "./simd/mod.ts";
import type { KernelArgs, WasmBackendLike } from "./kernel.ts";

function sliceKernel(args: KernelArgs) {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as WasmBackendLike;
  const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
  if (x.dtype === "string") throw new Error("string tensors are not supported by this Slice kernel");
  const [b, s] = tf.slice_util.parseSliceParams(
    x as unknown as tf.TensorInfo & { rank: number },
    begin,
    size,
  );
  const out = backend.makeOutput(s, x.dtype);
  const n = s.reduce((a, c) => a * c, 1);
  if (n === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(x.shape);
  if (tf.slice_util.isSliceContinous(x.shape, b, s)) {
    const off = tf.slice_util.computeFlatOffset(b, strides);
    dst.set(src.subarray(off, off + n));
    return out;
  }
  // Copy innermost rows; iterate the outer indices like an odometer.
  const rank = x.shape.length;
  const inner = s[rank - 1];
  const idx = new Array(rank - 1).fill(0);
  let o = 0;
  for (;;) {
    let off = b[rank - 1];
    for (let d = 0; d < rank - 1; d++) off += (b[d] + idx[d]) * strides[d];
    dst.set(src.subarray(off, off + inner), o);
    o += inner;
    let d = rank - 2;
    while (d >= 0 && ++idx[d] === s[d]) idx[d--] = 0;
    if (d < 0) break;
  }
  return out;
}

function transposeKernel(args: KernelArgs) {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as WasmBackendLike;
  const perm = (args.attrs as unknown as { perm: number[] }).perm;
  if (x.dtype === "string") throw new Error("string tensors are not supported by this Transpose kernel");
  const rank = x.shape.length;
  const outShape = perm.map((p) => x.shape[p]);
  const out = backend.makeOutput(outShape, x.dtype);
  const n = outShape.reduce((a, c) => a * c, 1);
  if (n === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  if (rank <= 1 || perm.every((p, i) => p === i)) {
    dst.set(src.subarray(0, n));
    return out;
  }
  const inStrides = [...tf.util.computeStrides(x.shape), 1];
  const st = perm.map((p) => inStrides[p]); // input stride of each output axis
  const inner = outShape[rank - 1], innerStride = st[rank - 1];
  const idx = new Array(rank - 1).fill(0);
  let o = 0, off = 0;
  for (;;) {
    if (innerStride === 1 && inner >= 256) {
      dst.set(src.subarray(off, off + inner), o);
      o += inner;
    } else if (innerStride === 1) {
      // Short rows (attention heads: 32–64 floats): a plain loop beats creating a subarray per row.
      for (let j = 0; j < inner; j++) dst[o++] = src[off + j];
    } else {
      for (let j = 0, i = off; j < inner; j++, i += innerStride) dst[o++] = src[i];
    }
    let d = rank - 2;
    while (d >= 0 && ++idx[d] === outShape[d]) {
      off -= (outShape[d] - 1) * st[d];
      idx[d--] = 0;
    }
    if (d < 0) break;
    off += st[d];
  }
  return out;
}

// ------------------------------------------------------------------------------------ fused GELU, LayerNorm

function f32(backend: WasmBackendLike, t: tf.TensorInfo, what: string): Float32Array {
  if (t.dtype !== "float32") throw new Error(`${what} must be float32, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/**
 * LayerNorm over the last axis of x (biased variance): outputs y (x's shape), x̂ `[N, D]` and 1/σ `[N, 1]`,
 * the two the backward pass keeps.
 */
function layerNormKernel(args: KernelArgs) {
  const { x, weight, bias } = args.inputs as { x: tf.TensorInfo; weight: tf.TensorInfo; bias: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const eps = args.attrs.eps as number;
  const D = x.shape[x.shape.length - 1], N = D === 0 ? 0 : tf.util.sizeFromShape(x.shape) / D;
  const y = backend.makeOutput(x.shape, "float32");
  const xhat = backend.makeOutput([N, D], "float32");
  const rstd = backend.makeOutput([N, 1], "float32");
  // Views after every makeOutput: growing the heap detaches earlier ones.
  const xs = f32(backend, x, "DeitLayerNorm x"), w = f32(backend, weight, "DeitLayerNorm weight");
  const b = f32(backend, bias, "DeitLayerNorm bias");
  if (w.length !== D || b.length !== D) throw new Error(`DeitLayerNorm: weight/bias must have ${D} elements`);
  if (D % 4 === 0 && useSimd(args.backend)) {
    const t = { x, weight, bias, y, xhat, rstd };
    layerNormForward(backend, N, D, eps, t);
    return [y, xhat, rstd];
  }
  const ys = f32(backend, y, "y"), xh = f32(backend, xhat, "x̂"), rs = f32(backend, rstd, "1/σ");
  for (let r = 0, o = 0; r < N; r++, o += D) {
    let sum = 0;
    for (let j = 0; j < D; j++) sum += xs[o + j];
    const mean = sum / D;
    let sq = 0;
    for (let j = 0; j < D; j++) {
      const d = xs[o + j] - mean;
      sq += d * d;
    }
    const inv = 1 / Math.sqrt(sq / D + eps);
    rs[r] = inv;
    for (let j = 0; j < D; j++) {
      const h = (xs[o + j] - mean) * inv;
      xh[o + j] = h;
      ys[o + j] = h * w[j] + b[j];
    }
  }
  return [y, xhat, rstd];
}

/**
 * Inputs dy (x's shape), x̂ `[N, D]`, 1/σ `[N, 1]`, weight `[D]`; outputs dx (dy's shape), dweight = Σ dy·x̂ and
 * dbias = Σ dy (over the rows). dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w.
 */
function layerNormGradKernel(args: KernelArgs) {
  const { dy, xhat, rstd, weight } = args.inputs as Record<string, tf.TensorInfo>;
  const backend = args.backend as WasmBackendLike;
  const D = xhat.shape[1], N = xhat.shape[0];
  const dx = backend.makeOutput(dy.shape, "float32");
  const dw = backend.makeOutput([D], "float32");
  const db = backend.makeOutput([D], "float32");
  const g = f32(backend, dy, "dy"), xh = f32(backend, xhat, "x̂"), rs = f32(backend, rstd, "1/σ");
  const w = f32(backend, weight, "weight");
  if (g.length !== N * D) throw new Error(`DeitLayerNormGrad: dy has ${g.length} elements, x̂ ${N * D}`);
  if (D % 4 === 0 && useSimd(args.backend)) {
    const t = { dy, xhat, rstd, weight, dx, dweight: dw, dbias: db };
    layerNormBackward(backend, N, D, t);
    return [dx, dw, db];
  }
  const dxs = f32(backend, dx, "dx"), dws = f32(backend, dw, "dweight"), dbs = f32(backend, db, "dbias");
  const accW = new Float64Array(D), accB = new Float64Array(D);
  for (let r = 0, o = 0; r < N; r++, o += D) {
    let m1 = 0, m2 = 0;
    for (let j = 0; j < D; j++) {
      const gv = g[o + j], h = xh[o + j], gh = gv * w[j];
      m1 += gh;
      m2 += gh * h;
      accW[j] += gv * h;
      accB[j] += gv;
    }
    m1 /= D;
    m2 /= D;
    const inv = rs[r];
    for (let j = 0; j < D; j++) dxs[o + j] = inv * (g[o + j] * w[j] - m1 - xh[o + j] * m2);
  }
  dws.set(accW);
  dbs.set(accB);
  return [dx, dw, db];
}

/** A float tensor's view of the heap, for lib/accel/simd's JavaScript tail. */
const heapF32 = (backend: WasmBackendLike) => (t: { dataId: unknown }) =>
  backend.typedArrayFromHeap(t as tf.TensorInfo) as Float32Array;

/** Outputs y = x·Φ(x) and Φ(x) (kept for the backward pass): lib/accel/simd's `gelu_fwd`. */
function geluKernel(args: KernelArgs) {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as WasmBackendLike;
  if (x.dtype !== "float32") throw new Error(`DeitGelu: x must be float32, got ${x.dtype}`);
  const y = backend.makeOutput(x.shape, "float32"), cdf = backend.makeOutput(x.shape, "float32");
  geluForward(backend, tf.util.sizeFromShape(x.shape), x, y, cdf, heapF32(backend));
  return [y, cdf];
}

/** dx = dy·(Φ(x) + x·φ(x)) from x, Φ(x) and dy: lib/accel/simd's `gelu_bwd`. */
function geluGradKernel(args: KernelArgs) {
  const { x, cdf, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const backend = args.backend as WasmBackendLike;
  const n = tf.util.sizeFromShape(x.shape);
  for (const [name, t] of [["cdf", cdf], ["dy", dy]] as const) {
    if (t.dtype !== "float32" || tf.util.sizeFromShape(t.shape) !== n) {
      throw new Error(`DeitGeluGrad: ${name} must be float32 with x's ${n} elements`);
    }
  }
  const dx = backend.makeOutput(x.shape, "float32");
  geluBackward(backend, n, x, cdf, dy, dx, heapF32(backend));
  return dx;
}

const FUSED: [string, (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]][] = [
  ["DeitGelu", geluKernel],
  ["DeitGeluGrad", geluGradKernel],
  ["DeitLayerNorm", layerNormKernel],
  ["DeitLayerNormGrad", layerNormGradKernel],
];

/** Whether lib/accel/ops.ts may call the fused kernels: they are registered and the active backend is wasm. */
export function fusedKernelsActive(): boolean {
  return registered && tf.getBackend() === "wasm";
}

/** Whether lib/accel/ops.ts may call the fused GELU: {@link fusedKernelsActive} and the runtime runs wasm SIMD. */
export function fusedGeluActive(): boolean {
  return fusedKernelsActive() && useSimd(tf.backend());
}

/** Why the lib/accel/simd kernels do not run in this process, or null when they do (decided once). */
let simdOff: string | null | undefined;
function simdOffReason(): string | null {
  simdOff ??= envVar("DEIT_SIMD") === "off" ? "DEIT_SIMD=off" : simdSupported() ? null : "no wasm SIMD";
  return simdOff;
}

/**
 * Whether the lib/accel/simd kernels run on `backend`: the runtime has wasm SIMD, the heap is reachable and not
 * shared, and `DEIT_SIMD` is not `off` (for comparisons).
 */
function useSimd(backend: unknown): boolean {
  return simdOffReason() === null && heapUsable(backend);
}

/** What runs LayerNorm and GELU on wasm, for `deno task doctor`. */
export function fusedKernelsDetail(): string {
  const off = simdOffReason();
  if (off) return `LayerNorm in JavaScript, GELU composed of tf ops (${off})`;
  return "LayerNorm and GELU as wasm-SIMD kernels on the heap (lib/accel/simd)";
}

function identityKernel(args: KernelArgs, stock: tf.KernelFunc) {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === "string") return stock(args as Parameters<tf.KernelFunc>[0]);
  (args.backend as WasmBackendLike).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let registered = false;

/** Replace the wasm backend's Slice, Transpose and Identity kernels and add the fused ones (idempotent). */
export function registerWasmKernelFixes(): void {
  if (registered) return;
  registered = true;
  tf.unregisterKernel("Slice", "wasm");
  tf.registerKernel({ kernelName: "Slice", backendName: "wasm", kernelFunc: sliceKernel as tf.KernelFunc });
  const stockTranspose = tf.getKernel("Transpose", "wasm");
  tf.unregisterKernel("Transpose", "wasm");
  // The stock set-up stays: it binds the C++ transpose that other stock kernels (Sum, Max, …) call directly.
  tf.registerKernel({
    kernelName: "Transpose",
    backendName: "wasm",
    kernelFunc: transposeKernel as tf.KernelFunc,
    setupFunc: stockTranspose?.setupFunc,
  });
  const stockIdentity = tf.getKernel("Identity", "wasm");
  if (stockIdentity) {
    tf.unregisterKernel("Identity", "wasm");
    tf.registerKernel({
      kernelName: "Identity",
      backendName: "wasm",
      kernelFunc: ((a: KernelArgs) =>
        identityKernel(a, stockIdentity.kernelFunc)) as unknown as tf.KernelFunc,
    });
  }
  for (const [kernelName, f] of FUSED) {
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: f as unknown as tf.KernelFunc });
  }
}
