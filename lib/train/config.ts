/**
 * Training configuration: one plain, flat, typed object (nanoGPT's configurator, big_vision's locked config).
 *
 * A config file in configs/ exports a partial config over `DEFAULTS` (DeiT's recipe, paper.md § Training
 * recipe / main.py defaults). The command line may only override keys that exist, with a value of the same type;
 * anything else is an error. `SCHEMA` is the one table of every key's range or choices: config files, grid rows
 * and command-line flags are all checked against it, and errors name the key and what it may be ("--lr must be
 * a positive number, got -1"). The result is frozen. Values derived from it (the scaled learning rate, steps per
 * epoch, …) live in a separate object that the run logs too — the user's config is never mutated.
 */
import { levenshteinDistance } from "@std/text";

import { pathToFileURL } from "node:url";
import { repoPath } from "../base/paths.ts";
import { BACKENDS } from "../accel/backend.ts";
import { getEntry, modelConfig, modelNames } from "../models/registry.ts";
import { DATASET_SPLITS } from "../data/datasets/mod.ts";
import { parseRandAugment } from "../data/transforms/rand_augment.ts";
import { DISTILL_MODES, distillMode } from "../distill/modes.ts";
import { estimateTrainBytes, fitMicroBatches, oomMessage, OutOfMemoryError } from "./memory.ts";
import { heapLimitBytes, WASM_HEAP_LIMIT_BYTES } from "../accel/engine.ts";

export interface TrainConfig {
  /** Registered model name (lib/models/registry.ts). */
  model: string;
  /** Dataset name (lib/data/datasets/mod.ts openDataset) and its folder ("" = the dataset's default location). */
  dataset: string;
  data_dir: string;
  train_split: string;
  val_split: string;
  /** Training resolution; 0 = the model's. */
  img_size: number;

  epochs: number;
  /** Total batch over all workers (DeiT: 1024; it counts repeated samples). */
  batch_size: number;
  /** Gradient accumulation per engine: 0 = as many as the wasm heap needs. */
  micro_batches: number;
  /** Data-parallel engines: 0 = one per core on wasm/cpu, 1 elsewhere. */
  workers: number;
  /** Augmentation workers of the data loader. */
  loader_workers: number;

  opt: "adamw" | "sgd";
  /** Base learning rate, scaled by batch_size / 512 (DeiT's rule). */
  lr: number;
  weight_decay: number;
  momentum: number;
  opt_eps: number;
  warmup_epochs: number;
  warmup_lr: number;
  min_lr: number;
  /** Step the cosine every optimiser step instead of every epoch (DeiT: per epoch). */
  sched_per_step: boolean;

  smoothing: number;
  drop_path: number;
  drop: number;
  /** Gradient clipping by global norm; 0 = off (DeiT). */
  clip_grad: number;
  ema: boolean;
  ema_decay: number;

  /** RandAugment policy ("" = off). */
  aa: string;
  color_jitter: number;
  /** Random erasing probability. */
  reprob: number;
  mixup: number;
  cutmix: number;
  mixup_prob: number;
  mixup_switch_prob: number;
  /** Repeated augmentation ×3. */
  repeated_aug: boolean;

  /** Distillation mode (lib/distill/modes.ts): none, soft-cls, hard-cls, token-cls, token-dist, token-both. */
  distillation: string;
  /** Teacher: a registered model name, and its checkpoint (a run folder's checkpoint-best or a .pth). */
  teacher: string;
  teacher_checkpoint: string;
  /**
   * Keep the teacher's logits on disk (.cache/teacher-logits/) for runs that show the same teacher the same
   * batches — the arms of one seed: computed once, read back by the others; the numbers do not change.
   */
  teacher_cache: boolean;
  /** α of the distillation loss; < 0 = the mode's default. */
  distillation_alpha: number;
  distillation_tau: number;

  /** Initialise from this checkpoint (heads with another class count are skipped; position grid resampled). */
  finetune: string;
  seed: number;
  backend: string;
  /** Evaluate on the validation split every N epochs (and always after the last). */
  eval_every: number;
  /** Cap the validation images (0 = all), for quick runs. */
  eval_limit: number;
  /** Cap the training images per epoch (0 = the whole split), for small-scale runs. */
  train_limit: number;
  /** Seed of the `train_limit` subset; -1 = the run's `seed` (fix it to vary only init and augmentation). */
  subset_seed: number;
  /**
   * Also evaluate this many training images (of the training subset, eval transform, no augmentation) at
   * every evaluation and log `train_acc1` / `train_eval_loss` beside the test figures: 0 = off.
   */
  train_eval_limit: number;
  /** Keep the weights every N epochs and after the last as `checkpoint-epoch-E.safetensors` (E = epochs done). */
  snapshot_every: number;
  /** Minutes between mid-epoch checkpoints (one is always written at the end of an epoch). */
  checkpoint_minutes: number;
}

/** DeiT's recipe (Table 9, main.py defaults) for DeiT-Ti on ImageNet. */
export const DEFAULTS: Readonly<TrainConfig> = Object.freeze({
  model: "deit_tiny_patch16_224",
  dataset: "imagefolder",
  data_dir: "",
  train_split: "train",
  val_split: "val",
  img_size: 0,
  epochs: 300,
  batch_size: 1024,
  micro_batches: 0,
  workers: 0,
  loader_workers: 1,
  opt: "adamw",
  lr: 5e-4,
  weight_decay: 0.05,
  momentum: 0.9,
  opt_eps: 1e-8,
  warmup_epochs: 5,
  warmup_lr: 1e-6,
  min_lr: 1e-5,
  sched_per_step: false,
  smoothing: 0.1,
  drop_path: 0.1,
  drop: 0,
  clip_grad: 0,
  ema: false,
  ema_decay: 0.99996,
  aa: "rand-m9-mstd0.5-inc1",
  color_jitter: 0.4,
  reprob: 0.25,
  mixup: 0.8,
  cutmix: 1.0,
  mixup_prob: 1.0,
  mixup_switch_prob: 0.5,
  repeated_aug: true,
  distillation: "none",
  teacher: "",
  teacher_checkpoint: "",
  teacher_cache: false,
  distillation_alpha: -1,
  distillation_tau: 3,
  finetune: "",
  seed: 0,
  backend: "auto",
  eval_every: 1,
  eval_limit: 0,
  train_limit: 0,
  subset_seed: -1,
  train_eval_limit: 0,
  snapshot_every: 0,
  checkpoint_minutes: 10,
});

/** What a file in configs/ exports (default export). */
export interface ConfigFile {
  /** How to run it, what it should reach, how long it takes here. */
  description: string;
  config: Partial<TrainConfig>;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * What one key's value may be: `must` says it in the error ("--lr must be a positive number, got -1"), `ok`
 * tests a value of the key's type (the type is the default's); a string from `ok` is the reason, added to the
 * error.
 */
export interface KeyRule {
  must: string;
  ok(v: never): boolean | string;
  /** Integers only (the command line's hint). */
  int?: boolean;
}

/** The largest seed (tf's random ops take seeds below 2^31). */
export const MAX_SEED = 2 ** 31 - 1;

const fmt = (x: number) => (Number.isFinite(x) ? String(x) : x > 0 ? "∞" : "-∞");

/** An integer in [min, max], said as "a positive integer", "an integer ≥ 0" or "an integer in [a, b]". */
function int(min: number, max = Infinity, must?: string): KeyRule {
  const said = must ??
    (max < Infinity
      ? `an integer in [${fmt(min)}, ${fmt(max)}]`
      : min === 1
      ? "a positive integer"
      : `an integer ≥ ${min}`);
  return { must: said, ok: (v: number) => Number.isInteger(v) && v >= min && v <= max, int: true };
}

/** A number between lo and hi, each end open or closed. */
function real(lo: number, hi: number, open: { lo?: boolean; hi?: boolean } = {}, must?: string): KeyRule {
  const said = must ??
    (hi === Infinity
      ? lo === 0 && open.lo ? "a positive number" : `a number ${open.lo ? ">" : "≥"} ${lo}`
      : `a number in ${open.lo ? "(" : "["}${fmt(lo)}, ${fmt(hi)}${open.hi ? ")" : "]"}`);
  return {
    must: said,
    ok: (v: number) =>
      Number.isFinite(v) && (open.lo ? v > lo : v >= lo) && (hi === Infinity || (open.hi ? v < hi : v <= hi)),
  };
}

function oneOf(choices: readonly string[]): KeyRule {
  return { must: `one of ${choices.join(", ")}`, ok: (v: string) => choices.includes(v) };
}

const ANY_STRING: KeyRule = { must: "a string", ok: () => true };
const BOOLEAN: KeyRule = { must: "true or false", ok: () => true };

/** Registered names close to `name` (a typo's likely meaning). */
function closeTo(name: string, names: readonly string[]): string[] {
  return names.filter((d) => d.includes(name) && name.length >= 3 || levenshteinDistance(d, name) <= 2);
}

const MODEL: KeyRule = {
  must: "a registered model (deno task models lists them)",
  ok: (v: string) => {
    if (modelNames().includes(v)) return true;
    const close = closeTo(v, modelNames());
    return close.length ? `did you mean ${close.slice(0, 5).join(", ")}?` : false;
  },
};

/**
 * A RandAugment policy: "" (off) or timm's string, "rand" and sections of a letter key and a number (m9, n2,
 * p0.5, mstd0.5, mmax10, inc1). timm skips a section without a number; here it is an error (a typo would
 * otherwise train with the defaults).
 */
const RAND_AUGMENT: KeyRule = {
  must: "'' (off) or a RandAugment policy like rand-m9-mstd0.5-inc1 (sections m, n, p, mstd, mmax, inc)",
  ok: (v: string) => {
    if (v === "") return true;
    const [head, ...sections] = v.split("-");
    if (head !== "rand") return "it must start with 'rand'";
    const bad = sections.find((p) => !/^(m|n|p|mstd|mmax|inc)\d+(\.\d+)?$/.test(p));
    if (bad !== undefined) return `section '${bad}' is not a known letter key and number`;
    try {
      parseRandAugment(v);
    } catch (e) {
      return (e as Error).message;
    }
    return true;
  },
};

/**
 * The one table of what every config key may hold: its type is the default's, its range or choices here. Config
 * files, grid rows and command-line flags are all checked against it ({@link checkPartial}); the checks that
 * involve several keys are {@link checkCombination}'s, those that need the data or the machine
 * {@link checkRunFits}'s and {@link checkWorkers}'s.
 */
export const SCHEMA: { readonly [K in keyof TrainConfig]: KeyRule } = {
  model: MODEL,
  dataset: oneOf(Object.keys(DATASET_SPLITS)),
  data_dir: ANY_STRING,
  train_split: ANY_STRING,
  val_split: ANY_STRING,
  img_size: int(0, Infinity, "0 (the model's) or a positive integer"),
  epochs: int(1),
  batch_size: int(1),
  micro_batches: int(0, Infinity, "0 (as many as the heap needs) or a positive integer"),
  workers: int(0, Infinity, "0 (one per core) or a positive integer"),
  loader_workers: int(0),
  opt: oneOf(["adamw", "sgd"]),
  lr: real(0, Infinity, { lo: true }),
  weight_decay: real(0, Infinity),
  momentum: real(0, 1, { hi: true }),
  opt_eps: real(0, Infinity, { lo: true }),
  warmup_epochs: real(0, Infinity),
  warmup_lr: real(0, Infinity),
  min_lr: real(0, Infinity),
  sched_per_step: BOOLEAN,
  smoothing: real(0, 1, { hi: true }),
  drop_path: real(0, 1, { hi: true }),
  drop: real(0, 1, { hi: true }),
  clip_grad: real(0, Infinity, {}, "a number ≥ 0 (0 = off)"),
  ema: BOOLEAN,
  ema_decay: real(0, 1, { hi: true }),
  aa: RAND_AUGMENT,
  color_jitter: real(0, Infinity),
  reprob: real(0, 1),
  mixup: real(0, Infinity, {}, "a number ≥ 0 (Beta's α; 0 = off)"),
  cutmix: real(0, Infinity, {}, "a number ≥ 0 (Beta's α; 0 = off)"),
  mixup_prob: real(0, 1),
  mixup_switch_prob: real(0, 1),
  repeated_aug: BOOLEAN,
  distillation: oneOf(Object.keys(DISTILL_MODES)),
  teacher: {
    must: "'' (none) or a registered model (deno task models lists them)",
    ok: (v: string) => v === "" || MODEL.ok(v as never),
  },
  teacher_checkpoint: ANY_STRING,
  teacher_cache: BOOLEAN,
  distillation_alpha: real(-Infinity, 1, {}, "a number in [0, 1], or < 0 for the mode's default"),
  distillation_tau: real(0, Infinity, { lo: true }),
  finetune: ANY_STRING,
  seed: int(0, MAX_SEED),
  backend: oneOf(BACKENDS),
  eval_every: int(1),
  eval_limit: int(0, Infinity, "0 (all) or a positive integer"),
  train_limit: int(0, Infinity, "0 (the whole split) or a positive integer"),
  subset_seed: {
    must: `-1 (the run's seed) or an integer in [0, ${MAX_SEED}]`,
    int: true,
    ok: (v: number) => v === -1 || (Number.isInteger(v) && v >= 0 && v <= MAX_SEED),
  },
  train_eval_limit: int(0, Infinity, "0 (off) or a positive integer"),
  snapshot_every: int(0, Infinity, "0 (off) or a positive integer"),
  checkpoint_minutes: real(0, Infinity),
};

/** How an error names a key: `--lr` on the command line, `FILE: lr` in a file, `lr` alone without a source. */
function keyName(k: string, source: string): string {
  return source === "command line" ? `--${k}` : source ? `${source}: ${k}` : k;
}

const show = (v: unknown) => (typeof v === "string" ? `'${v}'` : JSON.stringify(v) ?? String(v));

/** Why `v` is not a valid value of key `k` (null when it is). */
export function checkValue(k: keyof TrainConfig, v: unknown): string | null {
  const rule = SCHEMA[k];
  if (typeof v !== typeof DEFAULTS[k] || (typeof v === "number" && !Number.isFinite(v))) {
    return `must be ${rule.must}, got ${typeof v === "number" ? String(v) : JSON.stringify(v) ?? String(v)}`;
  }
  const r = rule.ok(v as never);
  if (r === true) return null;
  return `must be ${rule.must}, got ${show(v)}${typeof r === "string" ? ` (${r})` : ""}`;
}

/** Check a partial config against {@link SCHEMA}: every key known, every value of its type and range. */
export function checkPartial(p: Record<string, unknown>, source: string): Partial<TrainConfig> {
  for (const [k, v] of Object.entries(p)) {
    if (!(k in DEFAULTS)) {
      const close = Object.keys(DEFAULTS).filter((d) =>
        d.includes(k) || k.includes(d) || levenshteinDistance(d, k) <= 2
      );
      throw new ConfigError(
        `${source ? `${source}: ` : ""}unknown config key '${k}'${
          close.length ? ` (did you mean ${close.join(", ")}?)` : ""
        }`,
      );
    }
    const why = checkValue(k as keyof TrainConfig, v);
    if (why) throw new ConfigError(`${keyName(k, source)} ${why}`);
  }
  return p as Partial<TrainConfig>;
}

/** A number as the command line may write it: decimal, with an optional exponent (4e-3); no hex, no NaN. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parse `--key value` / `--key=value` overrides against the defaults' types and the {@link SCHEMA}. */
export function parseOverrides(args: string[]): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new ConfigError(`unexpected argument '${a}' (overrides are --key value)`);
    let [key, value] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    key = key.replaceAll("-", "_");
    if (!(key in DEFAULTS)) checkPartial({ [key]: null }, "command line");
    const k = key as keyof TrainConfig;
    const type = typeof DEFAULTS[k];
    if (value === undefined) {
      const next = args[i + 1];
      if (type === "boolean" && (next === undefined || next.startsWith("--"))) value = "true";
      else if (next === undefined) throw new ConfigError(`--${key} needs a value (${SCHEMA[k].must})`);
      else value = args[++i];
    }
    if (type === "number") {
      if (!DECIMAL.test(value)) {
        const like = SCHEMA[k].int ? "like 128" : "like 0.004 or 4e-3";
        throw new ConfigError(
          `--${key} must be ${SCHEMA[k].must}, written in decimal (${like}); got '${value}'`,
        );
      }
      out[key] = Number(value);
    } else if (type === "boolean") {
      if (value !== "true" && value !== "false") {
        throw new ConfigError(`--${key} must be true or false, got '${value}'`);
      }
      out[key] = value === "true";
    } else out[key] = value;
  }
  return checkPartial(out, "command line");
}

/** The ways `batch` images split over `workers` engines (the engines' shares differ by one at most). */
function shardSizes(batch: number, workers: number): number[] {
  const lo = Math.floor(batch / workers);
  return batch % workers ? [lo + 1, lo] : [lo];
}

/** A ViT's patch size and resolution, or null for a model of another family. */
function vitShape(model: string): { patch: number; size: number } | null {
  if (getEntry(model).family !== "vit") return null;
  const c = modelConfig(model);
  return { patch: c.patchSize, size: c.imgSize };
}

/**
 * The checks that involve several keys of a whole config (no data, no machine): the resolution fits the models'
 * patches, the splits exist, Mixup's batch is even, the distillation mode fits the student and has a teacher,
 * and the batch splits over the engines and micro-batches asked for. `name` says how an error names a key.
 */
export function checkCombination(
  c: Readonly<TrainConfig>,
  name: (k: keyof TrainConfig) => string = (k) => k,
) {
  const fail = (msg: string) => {
    throw new ConfigError(msg);
  };
  const size = c.img_size || (vitShape(c.model)?.size ?? 0);
  for (const [role, model] of [["model", c.model], ["teacher", c.teacher]] as const) {
    const vit = model ? vitShape(model) : null;
    if (vit && size % vit.patch !== 0) {
      const lo = Math.max(vit.patch, size - (size % vit.patch));
      fail(
        `${name("img_size")} ${size} is not a multiple of the ${role} ${model}'s patch size ${vit.patch} ` +
          `(e.g. ${lo} or ${lo + vit.patch}${c.img_size ? "" : `; set ${name("img_size")}`})`,
      );
    }
  }
  const splits = (DATASET_SPLITS as Record<string, readonly string[] | null>)[c.dataset];
  for (const k of ["train_split", "val_split"] as const) {
    if (splits && !splits.includes(c[k])) {
      fail(`${name(k)} must be a split of ${c.dataset} (${splits.join(", ")}), got '${c[k]}'`);
    }
  }
  if ((c.mixup > 0 || c.cutmix > 0) && c.batch_size % 2 !== 0) {
    fail(
      `${name("batch_size")} must be even with Mixup/CutMix on (mixup ${c.mixup}, cutmix ${c.cutmix}), ` +
        `got ${c.batch_size}`,
    );
  }
  const mode = distillMode(c.distillation);
  const distilled = getEntry(c.model).family === "vit" && modelConfig(c.model).distilled;
  if (mode.distToken !== distilled) {
    fail(
      `${name("distillation")} ${c.distillation} needs a student ${
        mode.distToken ? "with" : "without"
      } a distillation token, and ${c.model} has ${distilled ? "one" : "none"} ` +
        `(choose a ${mode.distToken ? "*_distilled_*" : "non-distilled"} ${name("model")})`,
    );
  }
  if (mode.kd !== "none" && (!c.teacher || !c.teacher_checkpoint)) {
    fail(
      `${name("distillation")} ${c.distillation} needs a teacher: set --teacher (a registered model) and ` +
        "--teacher_checkpoint (its run folder or checkpoint file)",
    );
  }
  if (c.workers > 0) checkShards(c, c.workers, name);
}

/** The batch splits over `workers` engines, and each engine's share into `micro_batches` equal pieces. */
function checkShards(c: Readonly<TrainConfig>, workers: number, name: (k: keyof TrainConfig) => string) {
  if (c.batch_size < workers) {
    throw new ConfigError(
      `${name("batch_size")} ${c.batch_size} is smaller than the ${workers} engines (${name("workers")}): ` +
        "every engine needs at least one image",
    );
  }
  const m = c.micro_batches;
  const uneven = m > 0 ? shardSizes(c.batch_size, workers).filter((n) => n % m !== 0) : [];
  if (uneven.length) {
    throw new ConfigError(
      `${name("micro_batches")} ${m} does not divide each engine's share of the batch ` +
        `(${c.batch_size} over ${workers} engines: ${
          shardSizes(c.batch_size, workers).join(" and ")
        } images); ` +
        `choose a divisor of ${uneven[0]} or 0 (as many as the heap needs)`,
    );
  }
}

/** defaults ← file ← command line, checked ({@link SCHEMA}, {@link checkCombination}) and frozen. */
export function resolveConfig(
  file: Partial<TrainConfig>,
  overrides: Partial<TrainConfig>,
  source = "",
): Readonly<TrainConfig> {
  const c = {
    ...DEFAULTS,
    ...checkPartial(file, source),
    ...checkPartial(overrides, "command line"),
  };
  const name = (k: keyof TrainConfig) => keyName(k, k in overrides ? "command line" : "");
  checkCombination(c, name);
  return Object.freeze(c);
}

/**
 * More engines than cores makes them take turns on the cores (slower, not faster): refused unless
 * `oversubscribe` (`deno task train --oversubscribe`).
 */
export function checkWorkers(workers: number, cores: number, oversubscribe = false): void {
  if (workers > cores && !oversubscribe) {
    throw new ConfigError(
      `--workers ${workers} asks for more engines than this machine's ${cores} cores (each engine is a thread ` +
        `that trains a replica): use --workers ${cores} or fewer (0 = one per core), or pass --oversubscribe`,
    );
  }
}

/** What {@link checkRunFits} needs of a run being set up. */
export interface RunShape {
  /** Engines the run starts (`workers` resolved). */
  workers: number;
  backend: string;
  /** Samples in an epoch of the training sampler, and the training set's name. */
  epochSamples: number;
  trainName: string;
  imgSize: number;
  numClasses: number;
  /** Host memory, bytes (default: this machine's). */
  hostBytes?: number;
}

/**
 * A run's shape against its data and the machine, before anything starts: a batch must fit in an epoch, its
 * images in host memory, an engine's share (or one micro-batch of it) in the wasm heap, and the batch must split
 * over the engines and micro-batches.
 */
export function checkRunFits(c: Readonly<TrainConfig>, r: RunShape): void {
  if (c.batch_size > r.epochSamples) {
    throw new ConfigError(
      `--batch_size ${c.batch_size} exceeds the ${r.epochSamples} training images an epoch of ${r.trainName} ` +
        `holds: an epoch would give no batch (use at most ${r.epochSamples})`,
    );
  }
  // The loader's batch and the next one it prepares, as float32 images (the engines' shards copy them again).
  const batchBytes = 2 * c.batch_size * r.imgSize * r.imgSize * 3 * 4;
  const host = r.hostBytes ?? Deno.systemMemoryInfo().total;
  if (batchBytes > host) {
    throw new ConfigError(
      `--batch_size ${c.batch_size} does not fit in memory: its ${r.imgSize}×${r.imgSize} images alone take ` +
        `${gib(batchBytes)} (a batch and the next one), and this machine has ${gib(host)}`,
    );
  }
  checkShards(c, r.workers, (k) => `--${k}`);
  if (heapLimitBytes(r.backend) !== undefined && getEntry(c.model).family === "vit") {
    const vc = modelConfig(c.model, { imgSize: r.imgSize, numClasses: r.numClasses });
    const share = Math.ceil(c.batch_size / r.workers);
    // Auto: the fewest micro-batches that fit (throws when not even one image does).
    const m = c.micro_batches || fitMicroBatches(vc, share);
    const micro = Math.ceil(share / m);
    if (estimateTrainBytes(vc, micro) > WASM_HEAP_LIMIT_BYTES) {
      throw new OutOfMemoryError(oomMessage(vc, share));
    }
  }
}

function gib(b: number): string {
  return `${(b / 2 ** 30).toFixed(1)} GiB`;
}

/**
 * Keys a resumed run may change: where and how it runs, not what it trains. Any other key must equal the
 * config the run started with (the checkpoint's position, schedule and data depend on them).
 */
export const RESUMABLE_CHANGES: readonly (keyof TrainConfig)[] = [
  "workers",
  "loader_workers",
  "backend",
  "micro_batches",
  "data_dir",
  "finetune",
  "eval_every",
  "snapshot_every",
  "checkpoint_minutes",
];

/** Refuse a resume whose config changes what the run trains (`saved`: the config.json of the run folder). */
export function checkResume(dir: string, saved: Record<string, unknown>, now: Readonly<TrainConfig>): void {
  const changed = (Object.keys(DEFAULTS) as (keyof TrainConfig)[]).filter((k) =>
    !RESUMABLE_CHANGES.includes(k) &&
    JSON.stringify(k in saved ? saved[k] : DEFAULTS[k]) !== JSON.stringify(now[k])
  );
  if (changed.length) {
    throw new ConfigError(
      `cannot resume ${dir} with another ${
        changed.map((k) => `${k} (the run has ${show(saved[k] ?? DEFAULTS[k])}, now ${show(now[k])})`).join(
          ", ",
        )
      }: a resumed run keeps the config it started with (only ${RESUMABLE_CHANGES.join(", ")} may change); ` +
        "drop the override, or start a new run with another --out",
    );
  }
}

/** One line per key: its name, what it may be, its default (for `--help`). */
export function describeKeys(): string[] {
  return (Object.keys(SCHEMA) as (keyof TrainConfig)[]).map((k) =>
    `  --${k.padEnd(19)} ${SCHEMA[k].must}; default ${show(DEFAULTS[k])}`
  );
}

/** Load a config by name (configs/NAME.ts) or path (.ts or .json). */
export async function loadConfigFile(nameOrPath: string): Promise<ConfigFile & { path: string }> {
  const isPath = nameOrPath.includes("/") || /\.(ts|json)$/.test(nameOrPath);
  const path = isPath
    ? (nameOrPath.startsWith("/") ? nameOrPath : `${Deno.cwd()}/${nameOrPath}`)
    : repoPath("configs", `${nameOrPath}.ts`);
  try {
    await Deno.stat(path);
  } catch {
    const names = await listConfigs();
    throw new ConfigError(`no config '${nameOrPath}' (${path} does not exist); configs: ${names.join(", ")}`);
  }
  let file: ConfigFile;
  if (path.endsWith(".json")) {
    try {
      file = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
    }
  } else {
    file = await importModule(path);
  }
  if (!file || typeof file.config !== "object" || file.config === null) {
    throw new ConfigError(`${path}: exports no { description, config }`);
  }
  checkPartial(file.config as Record<string, unknown>, path);
  return { ...file, path };
}

/**
 * The default export of a .ts config or grid; a module that does not parse or throws while it loads is a
 * ConfigError of one line (Deno's parse error names the line and column).
 */
export async function importModule<T>(path: string): Promise<T> {
  try {
    return (await import(pathToFileURL(path).href)).default;
  } catch (e) {
    const err = e as Error;
    const text = `${err?.message ?? err}`;
    const first = (text.split("\n").find((l) => l.trim()) ?? String(e)).trim();
    if (/^SyntaxError: /.test(first) || err?.name === "SyntaxError") {
      const at = text.match(/:(\d+):(\d+)\s*$/);
      throw new ConfigError(
        `${path} does not parse${at ? ` (line ${at[1]}, column ${at[2]})` : ""}: ${
          first.replace(/^SyntaxError: /, "")
        }`,
      );
    }
    throw new ConfigError(`${path} throws while it loads: ${first}`);
  }
}

export async function listConfigs(): Promise<string[]> {
  const dir = repoPath("configs");
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".ts")) out.push(e.name.slice(0, -3));
    }
  } catch { /* no configs folder */ }
  return out.sort();
}
