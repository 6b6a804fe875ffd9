/**
 * Weight files and models: one module for reading a checkpoint (pth or safetensors, picked by the file's first
 * bytes, not its extension, so a renamed file still loads and a wrong one fails with a message that says what
 * it is) and for loading it into, or writing it from, any model of this project with timm's key names.
 *
 * Every key and shape is checked: a missing, unexpected or mis-shaped tensor is an error that names it. A
 * non-strict load (fine-tuning) skips classifier heads whose class count differs and reports them. A model may
 * adapt a tensor it knows how to (the ViT resamples a position embedding to its grid).
 */
import * as tf from "@tensorflow/tfjs";
import { isPicklePrefix, LEGACY_FORMAT_MESSAGE, parsePth } from "./pth.ts";
import { parseSafetensors, writeSafetensors } from "./safetensors.ts";
import {
  CheckpointError,
  displayPath,
  type HostTensor,
  numel,
  readCheckpointBytes,
  type StateDict,
} from "./tensor.ts";
import { modelWeights } from "./train_state.ts";

export interface CheckpointFile {
  /** the weights, in file order. */
  stateDict: StateDict;
  /** for .pth: the other plain top-level values (e.g. `epoch`); {} for safetensors. */
  extra: Record<string, unknown>;
  format: "pth" | "safetensors";
  /** for safetensors: the header's `__metadata__`; {} for .pth. */
  metadata: Record<string, string>;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04]; // "PK\x03\x04"

/** A safetensors file starts with its header length and then the JSON header's "{". */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  return bytes.length > 8 && bytes[8] === 0x7b;
}

/**
 * Reads a checkpoint: a torch.save zip (.pth, e.g. the official DeiT releases) or a safetensors file.
 * Throws CheckpointError naming the path for a missing, unrecognized, legacy-format or damaged file.
 */
export async function readCheckpointFile(path: string | URL): Promise<CheckpointFile> {
  return parseCheckpoint(await readCheckpointBytes(path), displayPath(path));
}

/**
 * Parses checkpoint bytes held in memory, as readCheckpointFile does a file; `name` starts every error message.
 * Every failure, however the bytes are damaged or doctored, is a CheckpointError (see pth.ts and
 * safetensors.ts for what is checked).
 */
export function parseCheckpoint(bytes: Uint8Array, name = "<bytes>"): CheckpointFile {
  if (ZIP_MAGIC.every((b, i) => bytes[i] === b)) {
    const { stateDict, extra } = parsePth(bytes, name);
    return { stateDict, extra, format: "pth", metadata: {} };
  }
  // A safetensors header length can begin with the bytes 0x80 0x02 too (0x280 = 640), hence the "{" test.
  if (isPicklePrefix(bytes) && !looksLikeSafetensors(bytes)) {
    throw new CheckpointError(`${name}: ${LEGACY_FORMAT_MESSAGE}`);
  }
  if (!looksLikeSafetensors(bytes)) {
    throw new CheckpointError(
      `${name}: unrecognized checkpoint format (${
        bytes.length === 0 ? "empty file" : "neither a PyTorch zip " +
          "checkpoint nor safetensors"
      })`,
    );
  }
  const { tensors, metadata } = parseSafetensors(bytes, name);
  return { stateDict: tensors, extra: {}, format: "safetensors", metadata };
}

/** What a model exposes so that checkpoints can be loaded into it and written from it. */
export interface Loadable {
  /** timm name → weight in the model's internal layout. */
  readonly params: Map<string, tf.Variable>;
  /**
   * Non-trainable state that checkpoints also hold (BatchNorm running statistics, `num_batches_tracked`),
   * kept as float32 variables; integer tensors in the file are converted.
   */
  readonly buffers?: Map<string, tf.Variable>;
  /** timm name → shape as PyTorch stores it, for every param and buffer. */
  torchShapes(): Map<string, number[]>;
  /** Reorder torch-layout data into the internal layout of `name`. */
  toInternal(name: string, torchShape: readonly number[], data: Float32Array): Float32Array;
  /** Inverse of `toInternal`. */
  toTorch(name: string, torchShape: readonly number[], data: Float32Array): Float32Array;
  /**
   * Keys a checkpoint may lack, kept as they are (PyTorch's BatchNorm `num_batches_tracked`, which older and
   * re-saved checkpoints omit and torch itself tolerates).
   */
  readonly optionalKeys?: ReadonlySet<string>;
  /** Classifier weights a non-strict load may skip when the class count differs. */
  readonly headNames: readonly string[];
  /** Turn a mis-shaped tensor into the right shape where the model has a rule for it, else null. */
  adapt?(name: string, t: HostTensor): { tensor: HostTensor; note: string } | null;
}

export interface LoadOptions {
  /** false: skip heads whose class count differs (fine-tuning); default true. */
  strict?: boolean;
  /** Name used in error messages (the file). */
  source?: string;
}

export interface LoadReport {
  loaded: number;
  /** Keys skipped by a non-strict load, with the reason. */
  skipped: string[];
  /** Tensors adapted to the model (e.g. a resampled position embedding). */
  adapted: string[];
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Copy a state dict (torch layout) into the model, checking every key and shape first. */
export function loadStateDict(model: Loadable, sd: StateDict, opts: LoadOptions = {}): LoadReport {
  const strict = opts.strict ?? true;
  const src = opts.source ?? "state dict";
  const expected = model.torchShapes();
  const missing = [...expected.keys()].filter((k) => !sd.has(k));
  const unexpected = [...sd.keys()].filter((k) => !expected.has(k));
  const problems: string[] = [];
  const skipped: string[] = [];
  const adapted: string[] = [];
  const ready = new Map<string, HostTensor>();

  const skippableHead = (k: string) => !strict && model.headNames.includes(k);
  for (const k of missing) {
    if (model.optionalKeys?.has(k)) continue;
    if (skippableHead(k)) skipped.push(`${k} (not in checkpoint; kept initialised)`);
    else problems.push(`missing key '${k}' (expected shape [${expected.get(k)}])`);
  }
  for (const k of unexpected) {
    if (skippableHead(k) || (!strict && /^head(_dist)?\./.test(k))) {
      skipped.push(`${k} (model has no such head)`);
    } else problems.push(`unexpected key '${k}' (shape [${sd.get(k)!.shape}])`);
  }
  for (const [k, shape] of expected) {
    const t = sd.get(k);
    if (!t) continue;
    const isBuffer = model.buffers?.has(k) ?? false;
    if (t.dtype === "BOOL" || (!(t.data instanceof Float32Array) && !isBuffer)) {
      problems.push(`'${k}' has dtype ${t.dtype}, expected a float tensor`);
      continue;
    }
    if (sameShape(t.shape, shape)) {
      ready.set(k, t);
      continue;
    }
    const a = model.adapt?.(k, t);
    if (a) {
      ready.set(k, a.tensor);
      adapted.push(a.note);
    } else if (skippableHead(k)) {
      skipped.push(
        `${k} (checkpoint [${t.shape}] vs model [${shape}]: class count differs; kept initialised)`,
      );
    } else {
      problems.push(`'${k}' has shape [${t.shape}], the model expects [${shape}]`);
    }
  }
  if (problems.length > 0) {
    throw new CheckpointError(`${src} does not fit the model:\n  ${problems.join("\n  ")}`);
  }
  // All checks passed: only now touch the model, so a failed load leaves it unchanged.
  for (const [k, t] of ready) {
    const v = (model.params.get(k) ?? model.buffers?.get(k))!;
    const f32 = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    const data = model.toInternal(k, t.shape, f32);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape, "float32")));
  }
  return { loaded: ready.size, skipped, adapted };
}

/**
 * The model's weights as a state dict in torch layout (timm keys), read from the device asynchronously (a GPU
 * backend has no synchronous read under Deno).
 */
export async function stateDictOf(model: Loadable): Promise<StateDict> {
  const values: Record<string, Float32Array> = {};
  for (const k of model.torchShapes().keys()) {
    const v = (model.params.get(k) ?? model.buffers?.get(k))!;
    values[k] = (await v.data()) as Float32Array;
  }
  return stateDictFrom(model, values);
}

/** A state dict in torch layout from internal-layout values on the host (e.g. a training engine's weights). */
export function stateDictFrom(model: Loadable, values: Record<string, Float32Array>): StateDict {
  const sd: StateDict = new Map();
  for (const [k, shape] of model.torchShapes()) {
    const internal = values[k];
    if (!internal) throw new Error(`internal: no value for ${k}`);
    // Copy: the values may be a backend's own buffer, and toTorch may return its input.
    const data = model.toTorch(k, shape, internal.slice());
    if (data.length !== numel(shape)) {
      throw new Error(`internal: ${k} has ${data.length} values for [${shape}]`);
    }
    // BatchNorm's step counter is an int64 in PyTorch; keep it one in the file.
    if (k.endsWith(".num_batches_tracked")) sd.set(k, { dtype: "I64", shape, data: Int32Array.from(data) });
    else sd.set(k, { dtype: "F32", shape, data });
  }
  return sd;
}

/** Read a `.pth` or `.safetensors` file and load it into the model. */
export async function loadCheckpoint(
  model: Loadable,
  path: string,
  opts: LoadOptions = {},
): Promise<LoadReport> {
  const file = await readCheckpointFile(path);
  // A training run's checkpoint also carries its optimiser/EMA state (lib/io/train_state.ts): not model weights.
  return loadStateDict(model, modelWeights(file.stateDict), { source: path, ...opts });
}

/** Write the model's weights as `.safetensors` (atomically: temp file + rename). */
export async function saveSafetensors(model: Loadable, path: string, metadata: Record<string, string> = {}) {
  await writeSafetensors(path, await stateDictOf(model), metadata);
}
