/**
 * What our kernels are handed, named once: the slice of tfjs-backend-wasm's `BackendWasm` they use, tf's kernel
 * arguments, and the attention dimensions that the fast attention (lib/accel/ops.ts) and its BLAS kernels take.
 */
import type * as tf from "@tensorflow/tfjs";

/** The members of tfjs-backend-wasm 4.22's `BackendWasm` that lib/accel's kernels use. */
export interface WasmBackendLike {
  /** A new output tensor on the heap (may grow the heap: take views only after the last one). */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** A view of a tensor's data on the heap. */
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  incRef(dataId: tf.DataId): void;
  /** The module instance: its heap memory (lib/accel/simd runs on it). */
  wasm: { asm?: { memory?: WebAssembly.Memory } };
  /** Where each tensor's data lies in the heap, in bytes. */
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } | undefined };
}

/** What tf passes a kernel function. */
export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: tf.NamedAttrMap };

/** Multi-head attention over `batch` samples of `tokens` tokens: `heads` heads of `headDim` channels. */
export interface AttentionShape {
  batch: number;
  tokens: number;
  heads: number;
  headDim: number;
}
