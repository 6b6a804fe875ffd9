/**
 * How much wasm heap a training step needs, and how to split a batch so that it fits.
 *
 * The wasm backend is a wasm32 instance: its heap ends at 4 GiB, and when an allocation fails the engine
 * aborts and cannot continue. So we estimate before a step and use gradient accumulation (micro-batches)
 * when the batch would not fit, and turn an abort into a message that names a batch that fits.
 *
 * The estimate is fitted to measurements of the fast path (bench/NOTES.md: DeiT-Ti, heap high-water mark
 * after a step: 1004 MB at batch 8, 3762 MB at batch 32) with the shapes that drive it: per image and block,
 * about 42 floats per token and channel (saved activations and backward temporaries) and 7 per attention
 * score (P, its transpose, dP, dS …); plus weights, gradients and the two AdamW moments.
 */
import type { ViTConfig } from "../vit/config.ts";
import { countParams, tokenCounts, vitParamShapes } from "../vit/config.ts";

import { WASM_HEAP_LIMIT_BYTES } from "../accel/engine.ts";

export function estimateTrainBytes(c: ViTConfig, batch: number): number {
  const { tokens: T } = tokenCounts(c);
  const perImage = c.depth * (42 * T * c.embedDim + 7 * c.numHeads * T * T) * 4;
  const fixed = 6 * countParams(vitParamShapes(c)) * 4 + 32 * 2 ** 20;
  return fixed + batch * perImage;
}

/** The fewest micro-batches (a divisor of `batch`) whose training step fits in `limit` bytes. */
export function fitMicroBatches(c: ViTConfig, batch: number, limit = WASM_HEAP_LIMIT_BYTES): number {
  for (let m = 1; m <= batch; m++) {
    if (batch % m === 0 && estimateTrainBytes(c, batch / m) <= limit) return m;
  }
  throw new OutOfMemoryError(`even one image of this model does not fit in ${fmtGiB(limit)} of wasm heap`);
}

/** The largest batch whose training step fits in `limit` bytes. */
export function largestFittingBatch(c: ViTConfig, limit = WASM_HEAP_LIMIT_BYTES): number {
  let b = 0;
  while (estimateTrainBytes(c, b + 1) <= limit) b++;
  return b;
}

export class OutOfMemoryError extends Error {
  override name = "OutOfMemoryError";
}

/** The message for an engine that ran out of heap at `batch` images per step. */
export function oomMessage(c: ViTConfig, batch: number): string {
  const fits = largestFittingBatch(c);
  return `out of memory: a training step of ${batch} images does not fit in the wasm heap (4 GiB, ` +
    `estimated ${fmtGiB(estimateTrainBytes(c, batch))}); up to ${fits} images per engine fit — use ` +
    `--micro-batches ${fitMicroBatches(c, batch)} (gradient accumulation) or more --workers`;
}

function fmtGiB(b: number): string {
  return `${(b / 2 ** 30).toFixed(2)} GiB`;
}
