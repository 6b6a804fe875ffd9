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
 */
import * as tf from "@tensorflow/tfjs";

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

function sliceKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: tf.NamedAttrMap }) {
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

function transposeKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: tf.NamedAttrMap }) {
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

let registered = false;

/** Replace the wasm backend's Slice and Transpose kernels (idempotent). */
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
}
