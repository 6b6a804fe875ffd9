/** Shared test utilities: fixture paths, relative error, backend switching, tensor-leak checks. */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import type { StateDict } from "../lib/io/tensor.ts";

/** `shared/fixtures/reference/` beside the repository (CI lays shared/ next to the clone). */
export const FIXTURES = new URL("../../shared/fixtures/reference/", import.meta.url).pathname;

/**
 * The backends every parity test runs on: wasm with its matrix products through the machine's BLAS (the
 * default where one loads) and through the stock XNNPACK kernel (what runs where none does).
 */
export const PARITY_BACKENDS = ["cpu", "wasm", "wasm-xnnpack"] as const;

export async function fixture(name: string): Promise<StateDict> {
  return (await readSafetensors(FIXTURES + name)).tensors;
}

/** ‖a − b‖ / ‖b‖ (the fixtures README's measure). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

/** A backend by name; `wasm-xnnpack` is wasm with the stock matmul kernel. */
export async function useBackend(name: string): Promise<void> {
  if (name === "wasm-xnnpack") await initBackend("wasm", { matmul: "xnnpack" });
  else await initBackend(name);
}

/** NCHW data (the fixtures' layout) → NHWC tensor (the model's). */
export function nchwToNhwc(data: Float32Array, shape: readonly number[]): tf.Tensor4D {
  return tf.tidy(() =>
    tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [0, 2, 3, 1])
  );
}
