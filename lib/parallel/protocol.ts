/**
 * Messages between the data-parallel coordinator (lib/parallel/data_parallel.ts) and its workers
 * (lib/parallel/worker.ts). Arrays travel as transferable typed arrays; gradients travel through one
 * SharedArrayBuffer.
 */
import type { ConcreteBackend } from "../backend.ts";
import type { AdamWOptions } from "../train/optim.ts";
import type { Impl } from "../vit/layers.ts";
import type { ViTConfig } from "../vit/config.ts";
import type { MicroBatches } from "../train/step.ts";

/** A batch shard: images NHWC, float32, and integer labels. */
export interface Shard {
  x: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
}

export interface InitMessage {
  type: "init";
  rank: number;
  worldSize: number;
  backend: ConcreteBackend;
  config: ViTConfig;
  impl: Impl;
  seed: number;
  /** Internal-layout weights by name (every worker starts from the same values). */
  weights: Record<string, Float32Array>;
  optim: Omit<AdamWOptions, "noDecay"> & { noDecay: string[] };
  /** Gradient exchange: worldSize slots of `numParams` floats, then the barrier words. */
  sab: SharedArrayBuffer;
  numParams: number;
  stockKernels: boolean;
}

export type Request =
  | InitMessage
  | { type: "step"; id: number; shard: Shard; lr: number; totalBatch: number; microBatches: MicroBatches }
  | { type: "predict"; id: number; shard: Shard }
  | { type: "weights"; id: number }
  | { type: "close" };

export type Reply =
  | { type: "ready"; rank: number }
  | { type: "step"; id: number; loss: number; microBatches: number }
  | { type: "predict"; id: number; logits: Float32Array; classes: number }
  | { type: "weights"; id: number; weights: Record<string, Float32Array> }
  | { type: "error"; id?: number; message: string };

/** Bytes of the barrier area at the end of the shared buffer (Int32: arrive counter, generation). */
export const BARRIER_BYTES = 8;
