/**
 * A training run's pieces, built from its config: the backend, the data (seeded subsets), the student (and the
 * frozen teacher), the data-parallel engines that train it, the loader that feeds them, the schedule, and the
 * values derived from the config that the run logs beside it. Nothing here reads or writes the run folder
 * (lib/train/run_state.ts does).
 */
import { type ConcreteBackend, initBackend, matmulKernel } from "../accel/backend.ts";
import { lossReadInterval, onePerCore } from "../accel/engine.ts";
import { type Loadable, loadCheckpoint } from "../io/checkpoint.ts";
import { resolveCheckpoint } from "../io/train_state.ts";
import { openDataset } from "../data/datasets/mod.ts";
import type { Dataset } from "../data/dataset.ts";
import { RepeatedAugSampler, ShuffleSampler } from "../data/sampler.ts";
import { TrainLoader } from "../data/train_loader.ts";
import { checkDistillSetup, type DistillMode, distillMode } from "../distill/modes.ts";
import { teacherCacheDir } from "../distill/teacher_cache.ts";
import { fastOps } from "../accel/switch.ts";
import { repoPath } from "../base/paths.ts";
import { DataParallel } from "./parallel/data_parallel.ts";
import { type AnyModel, buildModel, getEntry, modelIO } from "../models/registry.ts";
import { Rng } from "../base/rng.ts";
import { VisionTransformer } from "../vit/model.ts";
import { checkRunFits, type TrainConfig } from "./config.ts";
import { limitDataset } from "./evaluate.ts";
import { type CosineSchedule, scaledLr } from "./schedule.ts";

export class TrainingError extends Error {
  override name = "TrainingError";
}

/**
 * Where `teacher_cache` keeps teacher logits: relative to the repository (ignored by git), or the folder
 * DEIT_TEACHER_CACHE names.
 */
export const TEACHER_CACHE = ".cache/teacher-logits";

/** Optimiser steps of a `--smoke` run (one epoch of them, on as many training images). */
export const SMOKE_STEPS = 3;

/** Values derived from the config (logged beside it; the config itself is never changed). */
export interface Derived {
  backend: ConcreteBackend;
  /** wasm: which kernel ran the matrix products ("blas (library)" or "xnnpack (why)"). */
  matmul?: string;
  workers: number;
  num_classes: number;
  img_size: number;
  train_images: number;
  val_images: number;
  lr: number;
  steps_per_epoch: number;
  epochs: number;
  distill_mode: string;
  inference_head: "cls" | "dist" | "both";
  params: number;
}

/** The data a run trains and evaluates on. */
export interface RunData {
  train: Dataset;
  val: Dataset;
  /** Training images seen through the eval transform (`train_eval_limit`). */
  trainEval?: Dataset;
  numClasses: number;
  imgSize: number;
}

/** A run's pieces (see the header). `close()` stops and frees them. */
export interface RunSetup {
  config: Readonly<TrainConfig>;
  smoke: boolean;
  data: RunData;
  /** The student as built (and fine-tuned) here; the engines train their own replicas of it. */
  model: AnyModel & Loadable;
  teacher?: AnyModel;
  mode: DistillMode;
  engines: DataParallel;
  loader: TrainLoader;
  derived: Derived;
  /** Epochs this run trains (1 for a smoke run). */
  epochs: number;
  schedule: CosineSchedule;
  /** The engines' losses are read back every this many steps (and at an epoch's end). */
  lossReadEvery: number;
  /** Eval-mode logits of the mode's inference head, from the engines. */
  predict(x: Float32Array, shape: [number, number, number, number]): Promise<Float32Array>;
  close(): Promise<void>;
}

/** A seeded subset of `n` samples of a dataset (the same for every run with the same seed). */
function subset(d: Dataset, n: number, seed: number): Dataset {
  if (n <= 0 || n >= d.length) return d;
  const idx = Int32Array.from({ length: d.length }, (_, i) => i);
  const rng = new Rng(seed ^ 0x5eed);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return limitDataset(d, idx.slice(0, n).sort());
}

async function openData(cfg: Readonly<TrainConfig>, smoke: boolean): Promise<RunData> {
  const dir = cfg.data_dir || undefined;
  let train = await openDataset(cfg.dataset, cfg.train_split, dir);
  let val = await openDataset(cfg.dataset, cfg.val_split, dir);
  const trainLimit = smoke ? cfg.batch_size * SMOKE_STEPS : cfg.train_limit;
  const subsetSeed = cfg.subset_seed >= 0 ? cfg.subset_seed : cfg.seed;
  train = subset(train, trainLimit, subsetSeed);
  val = subset(val, smoke ? Math.min(val.length, 2 * cfg.batch_size) : cfg.eval_limit, cfg.seed + 1);
  // Training images seen through the eval transform: whether a run fits its data (train vs test accuracy).
  const trainEval = cfg.train_eval_limit > 0
    ? subset(train, smoke ? Math.min(train.length, cfg.batch_size) : cfg.train_eval_limit, subsetSeed + 2)
    : undefined;
  const imgSize = cfg.img_size || modelIO(cfg.model).imgSize;
  return { train, val, trainEval, numClasses: train.classes.length, imgSize };
}

/** The student's config overrides: a ViT/DeiT gets the recipe's stochastic depth and dropout, a RegNet not. */
function studentOverrides(cfg: Readonly<TrainConfig>, data: RunData): Record<string, unknown> {
  const { numClasses, imgSize } = data;
  return getEntry(cfg.model).family === "vit"
    ? { numClasses, imgSize, dropPathRate: cfg.drop_path, dropRate: cfg.drop }
    : { numClasses, imgSize };
}

/**
 * The student — a ViT/DeiT, or a RegNet to train a convnet teacher — initialised from `finetune` when given, and
 * the frozen teacher its distillation mode needs, loaded from its checkpoint.
 */
async function buildModels(
  cfg: Readonly<TrainConfig>,
  data: RunData,
  say: (s: string) => void,
): Promise<{ model: AnyModel & Loadable; teacher?: AnyModel; teacherFile?: string; mode: DistillMode }> {
  const { numClasses, imgSize } = data;
  const model: AnyModel & Loadable = buildModel(cfg.model, studentOverrides(cfg, data), cfg.seed);
  const distilled = model instanceof VisionTransformer && model.config.distilled;
  if (cfg.finetune) {
    const r = await loadCheckpoint(model, await resolveCheckpoint(cfg.finetune), { strict: false });
    say(
      `fine-tuning from ${cfg.finetune}: ${r.loaded} tensors${
        r.skipped.length ? `; skipped ${r.skipped.join("; ")}` : ""
      }` +
        (r.adapted.length ? `; ${r.adapted.join("; ")}` : ""),
    );
  }
  const mode = distillMode(cfg.distillation);
  if (mode.kd === "none") {
    checkDistillSetup(cfg.distillation, { distilled, numClasses });
    return { model, mode };
  }
  if (!cfg.teacher) throw new TrainingError(`distillation '${cfg.distillation}' needs --teacher NAME`);
  const teacher = buildModel(
    cfg.teacher,
    getEntry(cfg.teacher).family === "vit" ? { numClasses, imgSize } : { numClasses },
  );
  checkDistillSetup(cfg.distillation, { distilled, numClasses }, { numClasses, name: cfg.teacher });
  if (!cfg.teacher_checkpoint) {
    throw new TrainingError(`distillation needs --teacher_checkpoint (a run folder or file)`);
  }
  const teacherFile = await resolveCheckpoint(cfg.teacher_checkpoint);
  await loadCheckpoint(teacher, teacherFile);
  return { model, teacher, teacherFile, mode };
}

/** The data-parallel engines, each with a replica of the student, its optimiser, loss, EMA and teacher. */
function startEngines(
  cfg: Readonly<TrainConfig>,
  data: RunData,
  models: { model: AnyModel & Loadable; teacher?: AnyModel; teacherCache?: string },
  backend: ConcreteBackend,
  workers: number,
): Promise<DataParallel> {
  const { model, teacher, teacherCache } = models;
  return DataParallel.start(model, { name: cfg.model, overrides: studentOverrides(cfg, data) }, {
    workers,
    backend,
    optim: { type: cfg.opt, weightDecay: cfg.weight_decay, eps: cfg.opt_eps, momentum: cfg.momentum },
    loss: {
      kind: "distill",
      mode: cfg.distillation,
      smoothing: cfg.smoothing,
      alpha: cfg.distillation_alpha >= 0 ? cfg.distillation_alpha : undefined,
      tau: cfg.distillation_tau,
    },
    clipGrad: cfg.clip_grad,
    emaDecay: cfg.ema ? cfg.ema_decay : 0,
    teacher: teacher
      ? {
        name: cfg.teacher,
        overrides: { numClasses: data.numClasses },
        model: teacher,
        cache: teacherCache ? { dir: teacherCache, numClasses: data.numClasses } : undefined,
      }
      : undefined,
    seed: cfg.seed,
  });
}

/** The order of the training samples: DeiT's repeated augmentation, or a plain shuffle. */
function makeSampler(cfg: Readonly<TrainConfig>, data: RunData, smoke: boolean) {
  const { train } = data;
  return cfg.repeated_aug
    ? new RepeatedAugSampler({ size: train.length, seed: cfg.seed, roundTo: smoke ? 1 : undefined })
    : new ShuffleSampler({ size: train.length, seed: cfg.seed });
}

/** The training batches: the sampler's order, augmentation, Mixup/CutMix. */
function makeLoader(
  cfg: Readonly<TrainConfig>,
  data: RunData,
  sampler: ReturnType<typeof makeSampler>,
): TrainLoader {
  const { train, numClasses, imgSize } = data;
  const mixing = cfg.mixup > 0 || cfg.cutmix > 0;
  return new TrainLoader({
    dataset: train,
    sampler,
    batchSize: cfg.batch_size,
    seed: cfg.seed,
    workers: cfg.loader_workers,
    transform: {
      size: imgSize,
      randAugment: cfg.aa || null,
      colorJitter: cfg.color_jitter,
      reprob: cfg.reprob,
    },
    mixup: mixing
      ? {
        mixupAlpha: cfg.mixup,
        cutmixAlpha: cfg.cutmix,
        prob: cfg.mixup_prob,
        switchProb: cfg.mixup_switch_prob,
        labelSmoothing: cfg.smoothing,
        numClasses,
      }
      : null,
  });
}

/** Builds a run's pieces from its config (see the header); progress and notes go to `say`. */
export async function setupRun(
  cfg: Readonly<TrainConfig>,
  o: { smoke: boolean; say: (s: string) => void },
): Promise<RunSetup> {
  const backend = await initBackend(cfg.backend);
  const data = await openData(cfg, o.smoke);
  const workers = cfg.workers || (onePerCore(backend.name) ? navigator.hardwareConcurrency : 1);
  const sampler = makeSampler(cfg, data, o.smoke);
  // The batch against the data, the memory and the engines, before any model or engine is built.
  checkRunFits(cfg, {
    workers,
    backend: backend.name,
    epochSamples: sampler.length,
    trainName: data.train.name,
    imgSize: data.imgSize,
    numClasses: data.numClasses,
  });
  const { model, teacher, teacherFile, mode } = await buildModels(cfg, data, o.say);
  const shapes = model.torchShapes();
  const kernel = matmulKernel(backend.name);
  let teacherCache: string | undefined;
  if (teacher && teacherFile && cfg.teacher_cache) {
    // The engine is part of the teacher's identity: another backend, kernel or op set rounds differently.
    const engine = { backend: backend.name, ...kernel, ops: fastOps() ? "fast" : "reference" };
    teacherCache = await teacherCacheDir(Deno.env.get("DEIT_TEACHER_CACHE") || repoPath(TEACHER_CACHE), {
      name: cfg.teacher,
      checkpoint: teacherFile,
      engine,
    });
    o.say(`teacher logits: cached in ${teacherCache} (shared with runs of the same teacher and batches)`);
  }
  const engines = await startEngines(cfg, data, { model, teacher, teacherCache }, backend.name, workers);
  const loader = makeLoader(cfg, data, sampler);
  const epochs = o.smoke ? 1 : cfg.epochs;
  const derived: Derived = {
    backend: backend.name,
    ...kernel,
    workers,
    num_classes: data.numClasses,
    img_size: data.imgSize,
    train_images: data.train.length,
    val_images: data.val.length,
    lr: scaledLr(cfg.lr, cfg.batch_size),
    steps_per_epoch: o.smoke ? Math.min(SMOKE_STEPS, loader.batchesPerEpoch) : loader.batchesPerEpoch,
    epochs,
    distill_mode: cfg.distillation,
    inference_head: mode.inference,
    params: [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0),
  };
  return {
    config: cfg,
    smoke: o.smoke,
    data,
    model,
    teacher,
    mode,
    engines,
    loader,
    derived,
    epochs,
    schedule: {
      lr: derived.lr,
      epochs: cfg.epochs,
      warmupEpochs: cfg.warmup_epochs,
      warmupLr: cfg.warmup_lr,
      minLr: cfg.min_lr,
    },
    // CPU engines read each step's loss as they go (a read costs nothing there); a GPU engine every 10 steps.
    lossReadEvery: lossReadInterval(backend.name),
    predict: (x, shape) => engines.predict(x, shape, mode.inference),
    async close() {
      await loader.close();
      await engines.close();
      model.dispose();
      teacher?.dispose();
    },
  };
}

/** The line a run starts with: model, data, engines, batch, learning rate, steps, epochs, distillation. */
export function describeRun(s: RunSetup): string {
  const { config: cfg, data, derived } = s;
  return `${cfg.model} on ${data.train.name} (${data.train.length} images, ${data.numClasses} classes) → ` +
    `${data.val.name}; ${derived.backend} × ${derived.workers} engines${
      derived.matmul ? ` (matmuls: ${derived.matmul.split(" (")[0]})` : ""
    }; batch ${cfg.batch_size}, lr ${derived.lr.toExponential(2)}, ` +
    `${derived.steps_per_epoch} steps/epoch, ${s.epochs} epochs; distillation ${cfg.distillation}`;
}
