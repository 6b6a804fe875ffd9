/**
 * A training run: config → data, model (and teacher) → data-parallel engines → epochs of steps with DeiT's
 * schedule → evaluation → log.jsonl, config.json and checkpoints in the run folder; resumable.
 *
 * Run folder:
 *   config.json            the config, the values derived from it, the command, commit, machine, date
 *   log.jsonl              one line per epoch (epoch, lr, train_loss, test_loss, test_acc1, test_acc5,
 *                          images_per_s, seconds, …); the last line of a finished run has "finished": true
 *   checkpoint-last.safetensors, checkpoint-best.safetensors
 *                          model weights under timm's names (loadable by `deno task eval`), plus the training
 *                          state under `_train.*` (optimiser slots, EMA) and in the metadata (epoch, loader
 *                          position, every engine's RNG, best accuracy). Written to a temporary file and renamed.
 */
import { type ConcreteBackend, initBackend, wasmMatMul } from "../accel/backend.ts";
import { type Loadable, loadCheckpoint, loadStateDict, stateDictFrom } from "../io/checkpoint.ts";
import { openDataset } from "../data/datasets/mod.ts";
import type { Dataset } from "../data/dataset.ts";
import { RepeatedAugSampler, ShuffleSampler } from "../data/sampler.ts";
import { TrainLoader } from "../data/train_loader.ts";
import { checkDistillSetup, distillMode } from "../distill/modes.ts";
import { readCheckpointFile } from "../io/checkpoint.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import type { StateDict } from "../io/tensor.ts";
import { machineLine } from "../base/machine.ts";
import { DataParallel } from "./parallel/data_parallel.ts";
import type { WorkerState } from "./parallel/protocol.ts";
import { fmtSeconds, Progress } from "../base/progress.ts";
import { type AnyModel, buildModel, getEntry, modelIO } from "../models/registry.ts";
import { Rng } from "../base/rng.ts";
import { VisionTransformer } from "../vit/model.ts";
import type { TrainConfig } from "./config.ts";
import { type EvalMetrics, evaluateDataset, limitDataset } from "./evaluate.ts";
import { lrAt, scaledLr } from "./schedule.ts";
import { readAll } from "./optim.ts";

export interface RunOptions {
  config: Readonly<TrainConfig>;
  /** The run folder. */
  out: string;
  /** Continue from `out/checkpoint-last.safetensors`. */
  resume?: boolean;
  /** A few steps and a small evaluation, same code path. */
  smoke?: boolean;
  /** How the run was started (for config.json). */
  command?: string;
  configSource?: string;
  /** Progress lines (default: stderr). */
  quiet?: boolean;
  /**
   * Stop cleanly: checked after each optimiser step; once aborted, checkpoint-last is written at the current
   * position (as a mid-epoch checkpoint; an epoch's last step first finishes the epoch) and the logs so far are
   * returned. `--resume` then continues to the numbers of an uninterrupted run.
   */
  signal?: AbortSignal;
}

export interface EpochLog {
  epoch: number;
  lr: number;
  train_loss: number;
  test_loss: number;
  test_acc1: number;
  test_acc5: number;
  images_per_s: number;
  seconds: number;
  steps: number;
  best_acc1: number;
  /** With `train_eval_limit`: the same evaluation on training images (eval transform, no augmentation). */
  train_acc1?: number;
  train_eval_loss?: number;
  finished?: boolean;
}

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

export class TrainingError extends Error {
  override name = "TrainingError";
}

const SMOKE_STEPS = 3;

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

async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("../../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** `path` itself, or a run folder's checkpoint-best (checkpoint-last when the run was compacted). */
export async function resolveCheckpoint(path: string): Promise<string> {
  try {
    if ((await Deno.stat(path)).isDirectory) {
      // A finished sweep run keeps only checkpoint-last (lib/sweep/compact.ts).
      const best = `${path}/checkpoint-best.safetensors`;
      return await Deno.stat(best).then(() => best, () => `${path}/checkpoint-last.safetensors`);
    }
  } catch { /* the loader names a missing file */ }
  return path;
}

interface TrainState {
  format: 1;
  /** Epoch and batch the loader yields next. */
  loader: { epoch: number; step: number; seed?: number; batchSize?: number };
  /** Optimiser steps taken. */
  global_step: number;
  best_acc1: number;
  rng: number[];
  optim_step: number;
  model: string;
  /** Sums of the epoch in progress (a mid-epoch checkpoint), so the epoch's log line is the same after resume. */
  partial?: { loss_sum: number; steps: number; images: number; seconds: number };
}

/** Everything needed to continue a run, as one safetensors file (weights under timm's names). */
function checkpointTensors(model: Loadable, states: WorkerState[]): StateDict {
  const sd = stateDictFrom(model, states[0].weights);
  const flat = (data: Float32Array) => ({ dtype: "F32" as const, shape: [data.length], data });
  for (const [slot, m] of Object.entries(states[0].optim.slots)) {
    for (const [k, v] of Object.entries(m)) sd.set(`_train.optim.${slot}.${k}`, flat(v));
  }
  for (const [k, v] of Object.entries(states[0].ema ?? {})) sd.set(`_train.ema.${k}`, flat(v));
  return sd;
}

export async function runTraining(o: RunOptions): Promise<EpochLog[]> {
  const cfg = o.config;
  const say = (s: string) => o.quiet || console.error(s);
  await Deno.mkdir(o.out, { recursive: true });
  const lastPath = `${o.out}/checkpoint-last.safetensors`, bestPath = `${o.out}/checkpoint-best.safetensors`;
  const logPath = `${o.out}/log.jsonl`;
  const resuming = o.resume && (await exists(lastPath));
  if (!o.resume && !o.smoke && (await exists(logPath))) {
    throw new TrainingError(
      `${o.out} already holds a run (log.jsonl); pass --resume to continue it or choose --out`,
    );
  }

  const backend = await initBackend(cfg.backend);
  // ---- data
  const dir = cfg.data_dir || undefined;
  let train = await openDataset(cfg.dataset, cfg.train_split, dir);
  let val = await openDataset(cfg.dataset, cfg.val_split, dir);
  const trainLimit = o.smoke ? cfg.batch_size * SMOKE_STEPS : cfg.train_limit;
  const subsetSeed = cfg.subset_seed >= 0 ? cfg.subset_seed : cfg.seed;
  train = subset(train, trainLimit, subsetSeed);
  val = subset(val, o.smoke ? Math.min(val.length, 2 * cfg.batch_size) : cfg.eval_limit, cfg.seed + 1);
  // Training images seen through the eval transform: whether a run fits its data (train vs test accuracy).
  const trainEval = cfg.train_eval_limit > 0
    ? subset(train, o.smoke ? Math.min(train.length, cfg.batch_size) : cfg.train_eval_limit, subsetSeed + 2)
    : undefined;
  const numClasses = train.classes.length;

  // ---- model, teacher
  // The student is a ViT/DeiT or — to train a convnet teacher — a RegNet (no stochastic depth, no dist token).
  const isVit = getEntry(cfg.model).family === "vit";
  const imgSize = cfg.img_size || modelIO(cfg.model).imgSize;
  const studentOverrides: Record<string, unknown> = isVit
    ? { numClasses, imgSize, dropPathRate: cfg.drop_path, dropRate: cfg.drop }
    : { numClasses, imgSize };
  const model: AnyModel & Loadable = buildModel(cfg.model, studentOverrides, cfg.seed);
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
  let teacher: AnyModel | undefined;
  if (mode.kd !== "none") {
    if (!cfg.teacher) throw new TrainingError(`distillation '${cfg.distillation}' needs --teacher NAME`);
    teacher = buildModel(
      cfg.teacher,
      getEntry(cfg.teacher).family === "vit" ? { numClasses, imgSize } : { numClasses },
    );
    checkDistillSetup(cfg.distillation, { distilled, numClasses }, { numClasses, name: cfg.teacher });
    if (!cfg.teacher_checkpoint) {
      throw new TrainingError(`distillation needs --teacher_checkpoint (a run folder or file)`);
    }
    await loadCheckpoint(teacher, await resolveCheckpoint(cfg.teacher_checkpoint));
  } else {
    checkDistillSetup(cfg.distillation, { distilled, numClasses });
  }

  // ---- engines and data pipeline
  const workers = cfg.workers || (["wasm", "cpu"].includes(backend.name) ? navigator.hardwareConcurrency : 1);
  const shapes = model.torchShapes();
  const dp = await DataParallel.start(model, { name: cfg.model, overrides: studentOverrides }, {
    workers,
    backend: backend.name,
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
    teacher: teacher ? { name: cfg.teacher, overrides: { numClasses }, model: teacher } : undefined,
    seed: cfg.seed,
  });
  const sampler = cfg.repeated_aug
    ? new RepeatedAugSampler({ size: train.length, seed: cfg.seed, roundTo: o.smoke ? 1 : undefined })
    : new ShuffleSampler({ size: train.length, seed: cfg.seed });
  const mixing = cfg.mixup > 0 || cfg.cutmix > 0;
  const loader = new TrainLoader({
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
  const epochs = o.smoke ? 1 : cfg.epochs;
  const derived: Derived = {
    backend: backend.name,
    ...(backend.name === "wasm" ? { matmul: wasmMatMul() } : {}),
    workers,
    num_classes: numClasses,
    img_size: imgSize,
    train_images: train.length,
    val_images: val.length,
    lr: scaledLr(cfg.lr, cfg.batch_size),
    steps_per_epoch: o.smoke ? Math.min(SMOKE_STEPS, loader.batchesPerEpoch) : loader.batchesPerEpoch,
    epochs,
    distill_mode: cfg.distillation,
    inference_head: mode.inference,
    params: [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0),
  };
  // CPU engines read each step's loss as they go (a read costs nothing there); a GPU engine every 10 steps.
  const lossReadEvery = ["wasm", "cpu"].includes(backend.name) ? 1 : 10;
  const schedule = {
    lr: derived.lr,
    epochs: cfg.epochs,
    warmupEpochs: cfg.warmup_epochs,
    warmupLr: cfg.warmup_lr,
    minLr: cfg.min_lr,
  };

  // ---- resume
  const logs: EpochLog[] = [];
  let globalStep = 0, best = -Infinity;
  let partial: TrainState["partial"];
  if (resuming) {
    const file = await readCheckpointFile(lastPath);
    const st = JSON.parse(file.metadata.train_state ?? "null") as TrainState | null;
    if (!st || st.format !== 1) throw new TrainingError(`${lastPath} holds no training state to resume from`);
    if (st.model !== cfg.model) {
      throw new TrainingError(`${lastPath} is a ${st.model} run, the config says ${cfg.model}`);
    }
    const weights = new Map([...file.stateDict].filter(([k]) => !k.startsWith("_train.")));
    loadStateDict(model, weights, { source: lastPath });
    const slots: Record<string, Record<string, Float32Array>> = {};
    const ema: Record<string, Float32Array> = {};
    for (const [k, t] of file.stateDict) {
      const m = k.match(/^_train\.optim\.([^.]+)\.(.+)$/);
      if (m) (slots[m[1]] ??= {})[m[2]] = t.data as Float32Array;
      else if (k.startsWith("_train.ema.")) ema[k.slice("_train.ema.".length)] = t.data as Float32Array;
    }
    // Weights and buffers (a RegNet's BatchNorm running statistics), as the checkpoint holds them.
    const w = { ...(await readAll(model.params)), ...(await readAll(model.buffers ?? new Map())) };
    await dp.setState(st.rng.map((rng) => ({
      weights: w,
      optim: { step: st.optim_step, slots },
      ema: cfg.ema ? ema : undefined,
      rng,
    })));
    loader.state = st.loader;
    globalStep = st.global_step;
    best = st.best_acc1 ?? -Infinity; // -Infinity (no evaluation yet) is stored as null in JSON
    partial = st.loader.step > 0 ? st.partial : undefined;
    for (const line of (await Deno.readTextFile(logPath)).split("\n")) {
      if (line.trim()) logs.push(JSON.parse(line));
    }
    // Epochs logged after the checkpoint (a kill between log and checkpoint) are dropped and redone.
    while (logs.length && logs[logs.length - 1].epoch >= st.loader.epoch) logs.pop();
    await Deno.writeTextFile(logPath, logs.map((l) => JSON.stringify(l) + "\n").join(""));
    say(`resuming ${o.out} at epoch ${st.loader.epoch}, batch ${st.loader.step} (step ${globalStep})`);
  } else {
    await Deno.writeTextFile(logPath, "");
  }
  const meta = {
    config: cfg,
    derived,
    config_source: o.configSource ?? null,
    command: o.command ?? null,
    commit: await gitCommit(),
    machine: await machineLine(),
    started: new Date().toISOString(),
    smoke: o.smoke ?? false,
  };
  await Deno.writeTextFile(`${o.out}/config.json`, JSON.stringify(meta, null, 2) + "\n");
  say(
    `${cfg.model} on ${train.name} (${train.length} images, ${numClasses} classes) → ${val.name}; ` +
      `${backend.name} × ${workers} engines${
        derived.matmul ? ` (matmuls: ${derived.matmul.split(" (")[0]})` : ""
      }; batch ${cfg.batch_size}, lr ${derived.lr.toExponential(2)}, ` +
      `${derived.steps_per_epoch} steps/epoch, ${epochs} epochs; distillation ${cfg.distillation}`,
  );

  let lastWeights: Record<string, Float32Array> = {};
  const saveCheckpoint = async (
    path: string,
    state: Omit<TrainState, "format" | "rng" | "optim_step" | "model">,
  ) => {
    // The engines hold the weights: engine 0's are written (the replicas are identical).
    const states = await dp.getState();
    lastWeights = states[0].weights;
    const ts: TrainState = {
      format: 1,
      ...state,
      rng: states.map((s) => s.rng),
      optim_step: states[0].optim.step,
      model: cfg.model,
    };
    await writeSafetensors(path, checkpointTensors(model, states), {
      train_state: JSON.stringify(ts),
      arch: cfg.model,
      num_classes: String(numClasses),
    });
  };

  // ---- epochs
  const predict = (x: Float32Array, shape: [number, number, number, number]) =>
    dp.predict(x, shape, mode.inference);
  let lastSave = performance.now();
  try {
    while (loader.state.epoch < epochs) {
      const epoch = loader.state.epoch;
      const t0 = performance.now();
      const progress = o.quiet
        ? undefined
        : new Progress(derived.steps_per_epoch, `epoch ${epoch}`, { initial: loader.state.step });
      // Resuming mid-epoch: carry on the epoch's sums (seconds: the time already spent on it before the stop).
      let lossSum = partial?.loss_sum ?? 0, steps = partial?.steps ?? 0, images = partial?.images ?? 0;
      let lossesRead = steps;
      /** Losses read back from the engines: summed into the epoch's mean; a non-finite one stops the run. */
      const absorb = async (losses: number[], lastStep: number) => {
        for (const [i, loss] of losses.entries()) {
          if (!Number.isFinite(loss)) {
            const step = lastStep - (losses.length - 1 - i);
            const good = (await exists(lastPath))
              ? `the last good checkpoint is ${lastPath} (--resume continues from it)`
              : "no checkpoint had been written yet";
            throw new TrainingError(
              `loss is ${loss} at epoch ${epoch}, step ${step}: training diverged; ${good}. ` +
                "Lower --lr or check the data.",
            );
          }
          lossSum += loss;
          lossesRead++;
        }
      };
      const spentBefore = partial?.seconds ?? 0;
      partial = undefined;
      let lr = lrAt(schedule, epoch);
      for await (const b of loader.epoch()) {
        if (b.step >= derived.steps_per_epoch) break;
        lr = cfg.sched_per_step
          ? lrAt(schedule, epoch + b.step / derived.steps_per_epoch)
          : lrAt(schedule, epoch);
        const n = b.labels.length;
        const midEpoch = b.step + 1 < derived.steps_per_epoch;
        // A GPU engine keeps the losses on the device and reads them every few steps; an epoch's last step
        // reads them all (the epoch's mean goes into the log).
        const readLoss = !midEpoch || (steps + 1) % lossReadEvery === 0;
        await absorb(
          await dp.step(
            b.x,
            [n, imgSize, imgSize, 3],
            b.labels,
            lr,
            cfg.micro_batches || "auto",
            b.target,
            readLoss,
          ),
          b.step,
        );
        steps++;
        images += n;
        globalStep++;
        const secs = spentBefore + (performance.now() - t0) / 1000;
        progress?.update(
          b.step + 1,
          `loss ${lossesRead ? (lossSum / lossesRead).toFixed(4) : "—"} ${(images / secs).toFixed(1)} im/s`,
        );
        // Mid-epoch checkpoints keep long epochs resumable; an interruption writes one and stops.
        const stop = midEpoch && o.signal?.aborted === true;
        if (
          stop ||
          (performance.now() - lastSave > cfg.checkpoint_minutes * 60_000 && !o.smoke && midEpoch)
        ) {
          await absorb(await dp.readLosses(), b.step);
          await saveCheckpoint(lastPath, {
            loader: loader.state,
            global_step: globalStep,
            best_acc1: best,
            partial: { loss_sum: lossSum, steps, images, seconds: secs },
          });
          lastSave = performance.now();
        }
        if (stop) {
          say(`interrupted at epoch ${epoch}, batch ${b.step + 1} (step ${globalStep})`);
          return logs;
        }
      }
      if (o.smoke && loader.state.epoch === epoch) {
        loader.state = { ...loader.state, epoch: epoch + 1, step: 0 };
      }
      const trainSecs = spentBefore + (performance.now() - t0) / 1000;
      const isLast = loader.state.epoch >= epochs;
      let m: EvalMetrics = { acc1: NaN, acc5: NaN, loss: NaN, count: 0 };
      let mTrain: EvalMetrics | undefined;
      if (isLast || (epoch + 1) % cfg.eval_every === 0) {
        // Inference activations of a whole training batch would not fit a wasm heap at 224 px: evaluate in 128s.
        m = await evaluateDataset(val, imgSize, Math.min(cfg.batch_size, 128), predict);
        if (trainEval) {
          mTrain = await evaluateDataset(trainEval, imgSize, Math.min(cfg.batch_size, 128), predict);
        }
      }
      const improved = m.acc1 > best;
      if (improved) best = m.acc1;
      const log: EpochLog = {
        epoch,
        lr,
        train_loss: lossSum / Math.max(steps, 1),
        test_loss: m.loss,
        test_acc1: m.acc1,
        test_acc5: m.acc5,
        images_per_s: images / trainSecs,
        seconds: spentBefore + (performance.now() - t0) / 1000,
        steps,
        best_acc1: best,
        ...(mTrain ? { train_acc1: mTrain.acc1, train_eval_loss: mTrain.loss } : {}),
        ...(isLast ? { finished: true } : {}),
      };
      // Checkpoint first, then the log line: a kill in between redoes the epoch instead of skipping it.
      await saveCheckpoint(lastPath, { loader: loader.state, global_step: globalStep, best_acc1: best });
      lastSave = performance.now();
      if (improved) {
        await Deno.copyFile(lastPath, `${bestPath}.tmp-${Deno.pid}`).then(() =>
          Deno.rename(`${bestPath}.tmp-${Deno.pid}`, bestPath)
        );
      }
      if (cfg.snapshot_every > 0 && ((epoch + 1) % cfg.snapshot_every === 0 || isLast) && !o.smoke) {
        // Weights only (those saveCheckpoint has just written), e.g. to pick a teacher by accuracy.
        const sd = stateDictFrom(model, lastWeights);
        await writeSafetensors(`${o.out}/checkpoint-epoch-${epoch + 1}.safetensors`, sd, {
          arch: cfg.model,
          num_classes: String(numClasses),
          epoch: String(epoch + 1),
          test_acc1: String(m.acc1),
        });
      }
      await Deno.writeTextFile(logPath, JSON.stringify(log) + "\n", { append: true });
      logs.push(log);
      say(
        `epoch ${epoch}: train loss ${log.train_loss.toFixed(4)}, test acc@1 ${m.acc1.toFixed(2)} acc@5 ` +
          `${m.acc5.toFixed(2)} loss ${m.loss.toFixed(4)}${
            mTrain ? `, train-set acc@1 ${mTrain.acc1.toFixed(2)}` : ""
          }, ${log.images_per_s.toFixed(1)} im/s, ` +
          `${fmtSeconds(log.seconds)} (best ${best.toFixed(2)})`,
      );
      if (o.signal?.aborted && !isLast) {
        say(`interrupted after epoch ${epoch} (step ${globalStep})`);
        return logs;
      }
    }
  } finally {
    await loader.close();
    await dp.close();
    model.dispose();
    teacher?.dispose();
  }
  return logs;
}
