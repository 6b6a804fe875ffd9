/**
 * Training configuration: one plain, flat, typed object (nanoGPT's configurator, big_vision's locked config).
 *
 * A config file in configs/ exports a partial config over `DEFAULTS` (DeiT's recipe, paper.md § Training
 * recipe / main.py defaults). The command line may only override keys that exist, with a value of the same type;
 * anything else is an error. The result is frozen. Values derived from it (the scaled learning rate, steps per
 * epoch, …) live in a separate object that the run logs too — the user's config is never mutated.
 */
import { levenshteinDistance } from "@std/text";

import { pathToFileURL } from "node:url";
import { repoPath } from "../base/paths.ts";

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

const CHOICES: Partial<Record<keyof TrainConfig, readonly string[]>> = { opt: ["adamw", "sgd"] };

/** Check a partial config: every key known, every value of the default's type (and a valid choice). */
export function checkPartial(p: Record<string, unknown>, source: string): Partial<TrainConfig> {
  for (const [k, v] of Object.entries(p)) {
    if (!(k in DEFAULTS)) {
      const close = Object.keys(DEFAULTS).filter((d) =>
        d.includes(k) || k.includes(d) || levenshteinDistance(d, k) <= 2
      );
      throw new ConfigError(
        `${source}: unknown config key '${k}'${close.length ? ` (did you mean ${close.join(", ")}?)` : ""}`,
      );
    }
    const want = typeof DEFAULTS[k as keyof TrainConfig];
    const got = typeof v;
    if (got !== want) {
      throw new ConfigError(`${source}: '${k}' must be a ${want}, got ${JSON.stringify(v)}`);
    }
    const choices = CHOICES[k as keyof TrainConfig];
    if (choices && !choices.includes(v as string)) {
      throw new ConfigError(`${source}: '${k}' must be one of ${choices.join(", ")}, got '${v}'`);
    }
  }
  return p as Partial<TrainConfig>;
}

/** Parse `--key value` / `--key=value` overrides against the defaults' types. */
export function parseOverrides(args: string[]): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new ConfigError(`unexpected argument '${a}' (overrides are --key value)`);
    let [key, value] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    key = key.replaceAll("-", "_");
    if (!(key in DEFAULTS)) checkPartial({ [key]: null }, "command line");
    const type = typeof DEFAULTS[key as keyof TrainConfig];
    if (value === undefined) {
      const next = args[i + 1];
      if (type === "boolean" && (next === undefined || next.startsWith("--"))) value = "true";
      else if (next === undefined) throw new ConfigError(`--${key} needs a value`);
      else value = args[++i];
    }
    if (type === "number") {
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n)) {
        throw new ConfigError(`--${key} must be a number, got '${value}'`);
      }
      out[key] = n;
    } else if (type === "boolean") {
      if (value !== "true" && value !== "false") {
        throw new ConfigError(`--${key} must be true or false, got '${value}'`);
      }
      out[key] = value === "true";
    } else out[key] = value;
  }
  return checkPartial(out, "command line");
}

/** defaults ← file ← command line, checked and frozen. */
export function resolveConfig(
  file: Partial<TrainConfig>,
  overrides: Partial<TrainConfig>,
): Readonly<TrainConfig> {
  const c = { ...DEFAULTS, ...checkPartial(file, "config"), ...checkPartial(overrides, "command line") };
  if (!Number.isInteger(c.batch_size) || c.batch_size < 1) throw new ConfigError(`batch_size must be ≥ 1`);
  if (!Number.isInteger(c.epochs) || c.epochs < 1) throw new ConfigError(`epochs must be ≥ 1`);
  return Object.freeze(c);
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
    file = (await import(pathToFileURL(path).href)).default;
  }
  if (!file || typeof file.config !== "object") {
    throw new ConfigError(`${path}: exports no { description, config }`);
  }
  checkPartial(file.config as Record<string, unknown>, path);
  return { ...file, path };
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
