/**
 * A training run: config → data, model (and teacher) → data-parallel engines → epochs of steps with DeiT's
 * schedule → evaluation → log.jsonl, config.json and checkpoints in the run folder; resumable.
 *
 * Three parts: the builder (lib/train/setup.ts: config → data, model, teacher, engines, loader), the run's state
 * (lib/train/run_state.ts: resume, checkpoints, log; the checkpoint format is lib/io/train_state.ts's), and the
 * epoch loop here.
 *
 * Run folder:
 *   config.json            the config, the values derived from it, the command, commit, machine, date
 *   log.jsonl              one line per epoch (epoch, lr, train_loss, test_loss, test_acc1, test_acc5,
 *                          images_per_s, seconds, …); the last line of a finished run has "finished": true
 *   checkpoint-last.safetensors, checkpoint-best.safetensors
 *                          model weights under timm's names (loadable by `deno task eval`), plus the training
 *                          state under `_train.*` (optimiser slots, EMA) and in the metadata (epoch, loader
 *                          position, every engine's RNG, best accuracy, the last epoch's log line). Written to a
 *                          temporary file and renamed.
 *   .lock                  held by the trainer working in the folder (its PID, host, start time)
 *
 * A kill at any moment loses no logged epoch: see lib/train/run_state.ts's header.
 */
import { exists } from "../base/paths.ts";
import { fmtSeconds, Progress } from "../base/progress.ts";
import { type EvalMetrics, evaluateDataset } from "./evaluate.ts";
import { lrAt } from "./schedule.ts";
import { describeRun, type RunSetup, setupRun, TrainingError } from "./setup.ts";
import { type EpochLog, RunState, testFault } from "./run_state.ts";
import type { TrainConfig } from "./config.ts";

export { type Derived, TrainingError } from "./setup.ts";
export type { EpochLog } from "./run_state.ts";

export interface RunOptions {
  config: Readonly<TrainConfig>;
  /** The run folder. */
  out: string;
  /** Continue from `out/checkpoint-last.safetensors` (a folder with nothing logged starts fresh). */
  resume?: boolean;
  /** Continue from this training checkpoint (e.g. `out/checkpoint-best.safetensors`). */
  resumeFrom?: string;
  /** Start over in a folder that holds a run (its log and checkpoints removed). */
  restart?: boolean;
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

/** A run: its pieces, its state, its options, and where its messages go. */
interface Run {
  s: RunSetup;
  st: RunState;
  o: RunOptions;
  say: (line: string) => void;
}

/** Trains a run (see the header) and returns every epoch's log line, a resumed run's earlier ones included. */
export async function runTraining(o: RunOptions): Promise<EpochLog[]> {
  const say = (line: string) => o.quiet || console.error(line);
  const st = await RunState.open(o.out, { ...o, say });
  let s: RunSetup | undefined;
  try {
    s = await setupRun(o.config, { smoke: o.smoke ?? false, say });
    await st.start(s, say);
    await st.writeConfig(s, o);
    say(describeRun(s));
    await epochs({ s, st, o, say });
    if (st.bestMissing) say(`note: ${st.bestMissing}`);
    return st.logs;
  } finally {
    await s?.close();
    st.close();
  }
}

/** Epochs until the last, or until an interruption (after a step, or after an epoch). */
async function epochs(r: Run): Promise<void> {
  const { s, st, o, say } = r;
  st.lastSave = performance.now();
  while (s.loader.state.epoch < s.epochs) {
    const epoch = s.loader.state.epoch;
    const sums = await trainEpoch(r, epoch);
    if (!sums) return;
    const log = await endEpoch(r, epoch, sums);
    if (o.signal?.aborted && !log.finished) {
      say(`interrupted after epoch ${epoch} (step ${st.globalStep})`);
      return;
    }
  }
}

/** What an epoch's steps leave for its log line. */
interface EpochTraining {
  lossSum: number;
  steps: number;
  images: number;
  /** Seconds of training (the evaluation excluded). */
  trainSeconds: number;
  /** The learning rate of its last step. */
  lr: number;
  /** Seconds spent on the epoch before this process took it up (a resumed epoch), and when it did. */
  spentBefore: number;
  t0: number;
  /** With a teacher cache: steps whose teacher logits it answered. */
  teacherCacheHits: number;
}

/**
 * An epoch's optimiser steps (the rest of it, for a resumed epoch), with mid-epoch checkpoints every
 * `checkpoint_minutes`. Null when interrupted mid-epoch (checkpoint-last is then written at the position).
 */
async function trainEpoch(r: Run, epoch: number): Promise<EpochTraining | null> {
  const { s, st, o, say } = r;
  const { config: cfg, derived, loader } = s;
  const imgSize = s.data.imgSize;
  const t0 = performance.now();
  const progress = o.quiet
    ? undefined
    : new Progress(derived.steps_per_epoch, `epoch ${epoch}`, { initial: loader.state.step });
  // Resuming mid-epoch: carry on the epoch's sums (seconds: the time already spent on it before the stop).
  let lossSum = st.partial?.loss_sum ?? 0, steps = st.partial?.steps ?? 0, images = st.partial?.images ?? 0;
  let lossesRead = steps, teacherCacheHits = 0;
  /** Losses read back from the engines: summed into the epoch's mean; a non-finite one stops the run. */
  const absorb = async (losses: number[], lastStep: number) => {
    for (const [i, loss] of losses.entries()) {
      if (!Number.isFinite(loss)) {
        const step = lastStep - (losses.length - 1 - i);
        const good = (await exists(st.lastPath))
          ? `the last good checkpoint is ${st.lastPath} (--resume continues from it)`
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
  const spentBefore = st.partial?.seconds ?? 0;
  st.partial = undefined;
  let lr = lrAt(s.schedule, epoch);
  for await (const b of loader.epoch()) {
    if (b.step >= derived.steps_per_epoch) break;
    lr = cfg.sched_per_step
      ? lrAt(s.schedule, epoch + b.step / derived.steps_per_epoch)
      : lrAt(s.schedule, epoch);
    const n = b.labels.length;
    const midEpoch = b.step + 1 < derived.steps_per_epoch;
    // A GPU engine keeps the losses on the device and reads them every few steps; an epoch's last step
    // reads them all (the epoch's mean goes into the log).
    const readLoss = !midEpoch || (steps + 1) % s.lossReadEvery === 0;
    await absorb(
      await s.engines.step(
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
    if (s.engines.lastTeacherCached) teacherCacheHits++;
    steps++;
    images += n;
    st.globalStep++;
    const secs = spentBefore + (performance.now() - t0) / 1000;
    progress?.update(
      b.step + 1,
      `loss ${lossesRead ? (lossSum / lossesRead).toFixed(4) : "—"} ${(images / secs).toFixed(1)} im/s`,
    );
    // Mid-epoch checkpoints keep long epochs resumable; an interruption writes one and stops.
    const stop = midEpoch && o.signal?.aborted === true;
    if (
      stop ||
      (performance.now() - st.lastSave > cfg.checkpoint_minutes * 60_000 && !s.smoke && midEpoch)
    ) {
      await absorb(await s.engines.readLosses(), b.step);
      await st.checkpoint(s, { loss_sum: lossSum, steps, images, seconds: secs });
    }
    if (stop) {
      say(`interrupted at epoch ${epoch}, batch ${b.step + 1} (step ${st.globalStep})`);
      return null;
    }
  }
  if (s.smoke && loader.state.epoch === epoch) {
    loader.state = { ...loader.state, epoch: epoch + 1, step: 0 };
  }
  const trainSeconds = spentBefore + (performance.now() - t0) / 1000;
  return { lossSum, steps, images, trainSeconds, lr, spentBefore, t0, teacherCacheHits };
}

/**
 * An epoch's end: the evaluation (every `eval_every` epochs and after the last), then its commit —
 * checkpoint-last, carrying the epoch's log line — then checkpoint-best, the snapshot and the log line, which a
 * resume restores from the commit when a stop came before them.
 */
async function endEpoch(r: Run, epoch: number, e: EpochTraining): Promise<EpochLog> {
  const { s, st, say } = r;
  const { config: cfg, data } = s;
  const isLast = s.loader.state.epoch >= s.epochs;
  let m: EvalMetrics = { acc1: NaN, acc5: NaN, loss: NaN, count: 0 };
  let mTrain: EvalMetrics | undefined;
  if (isLast || (epoch + 1) % cfg.eval_every === 0) {
    // Inference activations of a whole training batch would not fit a wasm heap at 224 px: evaluate in 128s.
    m = await evaluateDataset(data.val, data.imgSize, Math.min(cfg.batch_size, 128), s.predict);
    if (data.trainEval) {
      mTrain = await evaluateDataset(data.trainEval, data.imgSize, Math.min(cfg.batch_size, 128), s.predict);
    }
  }
  const improved = m.acc1 > st.best;
  if (improved) st.best = m.acc1;
  const log: EpochLog = {
    epoch,
    lr: e.lr,
    train_loss: e.lossSum / Math.max(e.steps, 1),
    test_loss: m.loss,
    test_acc1: m.acc1,
    test_acc5: m.acc5,
    images_per_s: e.images / e.trainSeconds,
    seconds: e.spentBefore + (performance.now() - e.t0) / 1000,
    steps: e.steps,
    best_acc1: st.best,
    ...(mTrain ? { train_acc1: mTrain.acc1, train_eval_loss: mTrain.loss } : {}),
    ...(s.loader.unreadable.length ? { train_unreadable: s.loader.unreadable.length } : {}),
    ...(m.unreadable ? { test_unreadable: m.unreadable } : {}),
    ...(cfg.teacher_cache && s.teacher ? { teacher_cache_hits: e.teacherCacheHits } : {}),
    ...(isLast ? { finished: true } : {}),
  };
  // The commit: checkpoint-last with the log line inside. A stop after it loses nothing: --resume re-appends
  // the line and writes checkpoint-best and the snapshot if they are missing.
  const line = JSON.stringify(log);
  await st.checkpoint(s, undefined, line);
  testFault(`committed:${epoch}`);
  if (improved) await st.keepBest();
  if (cfg.snapshot_every > 0 && ((epoch + 1) % cfg.snapshot_every === 0 || isLast) && !s.smoke) {
    // Weights only (those the checkpoint has just written), e.g. to pick a teacher by accuracy.
    await st.snapshot(s, epoch + 1, m.acc1);
  }
  testFault(`logging:${epoch}`);
  await st.appendLog(log, line);
  say(
    `epoch ${epoch}: train loss ${log.train_loss.toFixed(4)}, test acc@1 ${m.acc1.toFixed(2)} acc@5 ` +
      `${m.acc5.toFixed(2)} loss ${m.loss.toFixed(4)}${
        mTrain ? `, train-set acc@1 ${mTrain.acc1.toFixed(2)}` : ""
      }, ${log.images_per_s.toFixed(1)} im/s, ` +
      `${fmtSeconds(log.seconds)} (best ${st.best.toFixed(2)})`,
  );
  return log;
}
