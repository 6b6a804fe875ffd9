/**
 * Messages between the data-parallel coordinator (lib/train/parallel/data_parallel.ts) and its workers
 * (lib/train/parallel/worker.ts). Arrays travel as transferable typed arrays; gradients travel through one
 * SharedArrayBuffer.
 */
import type { ConcreteBackend, MatMulChoice } from "../../accel/backend.ts";
import type { OptimizerState } from "../optim.ts";
import type { MicroBatches } from "../step.ts";

/** A batch shard: images NHWC float32, integer labels, and optional soft targets `[n, C]`. */
export interface Shard {
  x: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  target?: Float32Array;
}

/** The loss the workers train with (functions cannot cross into a worker, so it is named). */
export type LossSpec =
  | { kind: "ce-both-heads" }
  | { kind: "distill"; mode: string; smoothing: number; alpha?: number; tau: number };

export interface OptimSpec {
  type: "adamw" | "sgd";
  betas?: [number, number];
  eps?: number;
  weightDecay: number;
  momentum?: number;
  noDecay: string[];
}

/** A frozen teacher: a registered model, its config overrides, and its weights and buffers (internal layout). */
export interface TeacherSpec {
  name: string;
  overrides: Record<string, unknown>;
  state: Record<string, Float32Array>;
  /** Keep its logits in this folder for other runs that show it the same batches (distill/teacher_cache.ts). */
  cache?: { dir: string; numClasses: number };
}

/** One rank's full training state (for checkpoints and resume). */
export interface WorkerState {
  /** Parameters and buffers (BatchNorm statistics), internal layout. */
  weights: Record<string, Float32Array>;
  optim: OptimizerState;
  ema?: Record<string, Float32Array>;
  /** Each rank's drop-path generator. */
  rng: number;
}

export interface InitMessage {
  type: "init";
  rank: number;
  worldSize: number;
  backend: ConcreteBackend;
  stockKernels: boolean;
  /** wasm: matmuls through BLAS or XNNPACK (undefined: the default, BLAS when one loads). */
  matmul?: MatMulChoice;
  /** The student: a registered model and its config overrides (ViT/DeiT or RegNet). */
  student: { name: string; overrides: Record<string, unknown> };
  /** The parent's op switch (lib/accel/switch.ts `fastOps()`): fast op implementations or the reference layers. */
  fastOps: boolean;
  seed: number;
  /** Internal-layout weights and buffers by name (every worker starts from the same values). */
  weights: Record<string, Float32Array>;
  optim: OptimSpec;
  loss: LossSpec;
  /** Global-norm gradient clipping; 0 = off. */
  clipGrad: number;
  /** EMA decay kept on rank 0; 0 = no EMA. */
  emaDecay: number;
  teacher?: TeacherSpec;
  /**
   * Exchange area: worldSize slots of `numParams + numBuffers` floats (gradients, then BatchNorm running
   * statistics), then the barrier words.
   */
  sab: SharedArrayBuffer;
  numParams: number;
  numBuffers: number;
  /**
   * Measurement only (bench/gpu_traffic.ts): a single worker exchanges its gradients through the host as
   * several workers do — the step as it was before it stayed on the device.
   */
  hostExchange?: boolean;
  /** Count the bytes this engine uploads to and reads back from its device; step replies carry the totals. */
  countTraffic?: boolean;
}

export type Request =
  | InitMessage
  | {
    type: "step";
    id: number;
    shard: Shard;
    lr: number;
    totalBatch: number;
    microBatches: MicroBatches;
    /** Read back the losses of this step and the unread ones before it (else they stay on the device). */
    readLoss: boolean;
  }
  /** Read back the losses not read yet. */
  | { type: "losses"; id: number }
  | { type: "predict"; id: number; shard: Shard; head: "cls" | "dist" | "both" }
  | { type: "getState"; id: number }
  | { type: "setState"; id: number; state: WorkerState }
  | { type: "close"; id: number };

export type Reply =
  | { type: "ready"; rank: number }
  /** `losses`: this worker's share of each step's loss read back by this request, oldest first. */
  | {
    type: "step";
    id: number;
    losses: number[];
    microBatches: number;
    traffic?: Traffic;
    /** With a teacher cache: whether this shard's teacher logits came from it. */
    teacherCached?: boolean;
  }
  | { type: "losses"; id: number; losses: number[] }
  | { type: "predict"; id: number; logits: Float32Array; classes: number }
  | { type: "getState"; id: number; state: WorkerState }
  | { type: "setState"; id: number }
  | { type: "closed"; id: number }
  | { type: "error"; id?: number; message: string };

/** Bytes an engine moved between the host and its device so far (tensor uploads, read-backs). */
export type { Traffic } from "../../accel/engine.ts";
import type { Traffic } from "../../accel/engine.ts";

/** Bytes of the barrier area at the end of the shared buffer (Int32: arrive counter, generation). */
export const BARRIER_BYTES = 8;
