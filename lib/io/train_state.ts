/**
 * The training checkpoint: the one module that writes and reads what a run folder's checkpoints hold beside the
 * model's weights. Everything else (the trainer's resume, the model loader, the report's EMA reader, the sweep's
 * compaction) goes through it.
 *
 * On disk (a safetensors file; this layout is what runs in progress resume from, so it does not change):
 *   <timm name>                     the model's weights and buffers, torch layout (loadable by `deno task eval`)
 *   _train.optim.<slot>.<name>      the optimiser's slots (AdamW: m, v; SGD: buf), flat, the model's internal
 *                                   layout
 *   _train.ema.<name>               the EMA of the weights (runs with `ema`), flat, internal layout
 *   __metadata__.train_state        JSON: {format: 1, loader, global_step, best_acc1, [partial], rng, optim_step,
 *                                   model} (best_acc1 −Infinity, no evaluation yet, is stored as null)
 *   __metadata__.arch, num_classes  the model's registered name and class count
 *   __metadata__.epoch_log          the log.jsonl line (JSON, no newline) of the last epoch done at this position
 *                                   (loader.epoch − 1), when there is one: the checkpoint and its epoch's log
 *                                   line are one commit, and a resume restores a line the log lacks. Checkpoints
 *                                   written before this key existed lack it (and resume all the same).
 * A finished run compacted by the sweep keeps everything but the optimiser's slots (and says so in
 * `__metadata__.compacted`).
 */
import { writeSafetensors } from "./safetensors.ts";
import type { HostTensor, StateDict } from "./tensor.ts";

/** Tensor names under this prefix are training state, not model weights. */
export const TRAIN_PREFIX = "_train.";
const OPTIM_PREFIX = `${TRAIN_PREFIX}optim.`;
const EMA_PREFIX = `${TRAIN_PREFIX}ema.`;

/** A run folder's checkpoints. */
export const LAST_CHECKPOINT = "checkpoint-last.safetensors";
export const BEST_CHECKPOINT = "checkpoint-best.safetensors";

/** The metadata key of the log line of the last epoch done at a checkpoint's position. */
export const EPOCH_LOG_KEY = "epoch_log";

/** Where a data loader stands: the epoch and batch it yields next (and what it was built with). */
export interface LoaderPosition {
  epoch: number;
  step: number;
  seed?: number;
  batchSize?: number;
}

/** The training state a checkpoint's metadata carries (`train_state`). */
export interface TrainState {
  format: 1;
  /** Epoch and batch the loader yields next. */
  loader: LoaderPosition;
  /** Optimiser steps taken. */
  global_step: number;
  /** Best test accuracy so far; −Infinity before the first evaluation. */
  best_acc1: number;
  /** Every engine's drop-path generator. */
  rng: number[];
  optim_step: number;
  /** The registered model the run trains. */
  model: string;
  /** Sums of the epoch in progress (a mid-epoch checkpoint), so the epoch's log line is the same after resume. */
  partial?: { loss_sum: number; steps: number; images: number; seconds: number };
}

/** Flat values by parameter name, in the model's internal layout (as a training engine holds them). */
export type FlatValues = Record<string, Float32Array>;

/** What a training checkpoint holds besides its metadata. */
export interface TrainingTensors {
  /** The model's weights and buffers, torch layout, timm names. */
  weights: StateDict;
  /** Optimiser slot (m, v, buf) → parameter → values. */
  optimSlots: Record<string, FlatValues>;
  /** EMA of the weights; empty when the run keeps none. */
  ema: FlatValues;
}

export interface TrainingCheckpoint extends TrainingTensors {
  /** Null when the file holds no training state of a known format (a plain weight file). */
  state: TrainState | null;
  /** The log line of the last epoch done at the checkpoint's position (`epoch_log`); null when it has none. */
  epochLog: string | null;
  /** The file's other metadata (arch, num_classes, compacted, …). */
  metadata: Record<string, string>;
}

/** A tensor name that is training state (optimiser, EMA), not a model weight. */
export function isTrainingKey(name: string): boolean {
  return name.startsWith(TRAIN_PREFIX);
}

/** The model's weights of a checkpoint's tensors (training state left out). */
export function modelWeights(sd: StateDict): StateDict {
  return new Map([...sd].filter(([k]) => !isTrainingKey(k)));
}

/** The tensors a finished run keeps: everything but the optimiser's slots. */
export function withoutOptimiser(sd: StateDict): StateDict {
  return new Map([...sd].filter(([k]) => !k.startsWith(OPTIM_PREFIX)));
}

/** The `train_state` metadata value (keys in the order every checkpoint so far has them). */
export function encodeTrainState(s: TrainState): string {
  const { loader, global_step, best_acc1, partial, rng, optim_step, model } = s;
  return JSON.stringify({
    format: 1,
    loader,
    global_step,
    best_acc1,
    ...(partial ? { partial } : {}),
    rng,
    optim_step,
    model,
  });
}

/** A checkpoint's training state, or null when it has none of a known format. */
export function decodeTrainState(metadata: Record<string, string>): TrainState | null {
  const st = JSON.parse(metadata.train_state ?? "null") as TrainState | null;
  if (!st || st.format !== 1) return null;
  // −Infinity (no evaluation yet) is stored as null in JSON.
  return { ...st, best_acc1: st.best_acc1 ?? -Infinity };
}

/** The tensors of a training checkpoint: weights, then the optimiser's slots, then the EMA. */
export function trainingStateDict(t: TrainingTensors): StateDict {
  const sd: StateDict = new Map(t.weights);
  const flat = (data: Float32Array): HostTensor => ({ dtype: "F32", shape: [data.length], data });
  for (const [slot, m] of Object.entries(t.optimSlots)) {
    for (const [k, v] of Object.entries(m)) sd.set(`${OPTIM_PREFIX}${slot}.${k}`, flat(v));
  }
  for (const [k, v] of Object.entries(t.ema)) sd.set(`${EMA_PREFIX}${k}`, flat(v));
  return sd;
}

/** The metadata of a run's checkpoint: `train_state`, `arch`, `num_classes`, and `epoch_log` when given. */
export function trainingMetadata(
  state: TrainState,
  numClasses: number,
  epochLog?: string,
): Record<string, string> {
  return {
    train_state: encodeTrainState(state),
    arch: state.model,
    num_classes: String(numClasses),
    ...(epochLog !== undefined ? { [EPOCH_LOG_KEY]: epochLog } : {}),
  };
}

/**
 * Writes a training checkpoint (atomically: temporary file and rename), with the log line of the last epoch
 * done at its position when given (`epoch_log`).
 */
export async function writeTrainingCheckpoint(
  path: string,
  tensors: TrainingTensors,
  state: TrainState,
  numClasses: number,
  epochLog?: string,
): Promise<void> {
  await writeSafetensors(path, trainingStateDict(tensors), trainingMetadata(state, numClasses, epochLog));
}

/** Splits a checkpoint (as `readCheckpointFile` returns it) into weights, optimiser slots, EMA and state. */
export function parseTrainingCheckpoint(
  file: { stateDict: StateDict; metadata: Record<string, string> },
): TrainingCheckpoint {
  const weights: StateDict = new Map();
  const optimSlots: Record<string, FlatValues> = {};
  const ema: FlatValues = {};
  for (const [k, t] of file.stateDict) {
    const m = k.match(/^_train\.optim\.([^.]+)\.(.+)$/);
    if (m) (optimSlots[m[1]] ??= {})[m[2]] = t.data as Float32Array;
    else if (k.startsWith(EMA_PREFIX)) ema[k.slice(EMA_PREFIX.length)] = t.data as Float32Array;
    else if (!isTrainingKey(k)) weights.set(k, t);
  }
  return {
    weights,
    optimSlots,
    ema,
    state: decodeTrainState(file.metadata),
    epochLog: file.metadata[EPOCH_LOG_KEY] ?? null,
    metadata: file.metadata,
  };
}

/** `path` itself, or a run folder's checkpoint-best (checkpoint-last when the run was compacted). */
export async function resolveCheckpoint(path: string): Promise<string> {
  try {
    if ((await Deno.stat(path)).isDirectory) {
      // A finished sweep run keeps only checkpoint-last (lib/sweep/compact.ts).
      const best = `${path}/${BEST_CHECKPOINT}`;
      return await Deno.stat(best).then(() => best, () => `${path}/${LAST_CHECKPOINT}`);
    }
  } catch { /* the loader names a missing file */ }
  return path;
}
