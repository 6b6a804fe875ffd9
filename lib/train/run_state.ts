/**
 * A run's state and its folder: where the run stands (optimiser steps, best accuracy, the sums of an epoch in
 * progress, the epochs logged), and the files that keep it — log.jsonl, config.json and the checkpoints, whose
 * format lib/io/train_state.ts owns. A run starts fresh or resumes from checkpoint-last to the position it was
 * saved at.
 *
 * What a kill (or a full disk) at any moment leaves:
 * - One trainer per folder: `.lock`, held (an OS file lock, gone with its process) from the start to the end.
 * - Every file is written to `NAME.tmp-PID` and renamed; temporaries of dead processes are removed at start.
 * - An epoch ends with one commit, checkpoint-last, which carries the epoch's log line (`epoch_log`); what
 *   follows (checkpoint-best, the epoch snapshot, the log.jsonl line) is restored from it by a resume when a
 *   stop came in between. Log lines beyond the checkpoint resumed from are redone (moved to log.redone.jsonl).
 * - A failed write (ENOSPC …) is one line naming the file and the last good checkpoint, which it leaves intact.
 */
import { loadStateDict, readCheckpointFile, stateDictFrom } from "../io/checkpoint.ts";
import { tempPid, writeFileAtomic, writeSafetensors } from "../io/safetensors.ts";
import { CheckpointError, type StateDict } from "../io/tensor.ts";
import {
  BEST_CHECKPOINT,
  LAST_CHECKPOINT,
  parseTrainingCheckpoint,
  type TrainingCheckpoint,
  type TrainState,
  writeTrainingCheckpoint,
} from "../io/train_state.ts";
import { exists, REPO_ROOT } from "../base/paths.ts";
import { machineLine } from "../base/machine.ts";
import { readAll } from "./optim.ts";
import { type RunSetup, TrainingError } from "./setup.ts";

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
  /** Training images skipped so far as unreadable (each replaced by the next readable one); absent when none. */
  train_unreadable?: number;
  /** Test images this evaluation could not read (left out of its figures); absent when none. */
  test_unreadable?: number;
  /**
   * With `teacher_cache`: steps of this epoch whose teacher logits came from the cache (counted since the
   * resume when the epoch was resumed mid-way).
   */
  teacher_cache_hits?: number;
  finished?: boolean;
}

/** Sums of an epoch in progress, as a mid-epoch checkpoint keeps them. */
export type EpochSums = NonNullable<TrainState["partial"]>;

/** How the run was started, for config.json. */
export interface RunOrigin {
  command?: string;
  configSource?: string;
}

/** How to open a run folder. */
export interface OpenOptions {
  /** Continue from checkpoint-last; a folder with nothing logged yet starts fresh. */
  resume?: boolean;
  /** Continue from this training checkpoint instead (e.g. checkpoint-best when checkpoint-last is damaged). */
  resumeFrom?: string;
  /** Start over in a folder that holds a run: its log and checkpoints are removed first. */
  restart?: boolean;
  smoke?: boolean;
  /** The command line, to print the one that continues from a fallback. */
  command?: string;
  say?: (line: string) => void;
}

/** The lock file of a run folder. */
export const LOCK_FILE = ".lock";
/** Where a resume moves log lines of epochs beyond the checkpoint it resumes from. */
export const REDONE_LOG = "log.redone.jsonl";

/**
 * Test hooks (`DEIT_TEST_FAULT=kind:point[,…]`): `kill:POINT` SIGKILLs the trainer when it reaches POINT,
 * `enospc:POINT` fails it there as a full disk does. Points: `write:FILE` (before writing FILE of the run folder),
 * `append:log.jsonl` (appending a log line), `committed:E` (epoch E's checkpoint-last written), `logging:E`
 * (before epoch E's log line is appended).
 */
const FAULTS = (() => {
  try {
    return (Deno.env.get("DEIT_TEST_FAULT") ?? "").split(",").filter(Boolean);
  } catch {
    return [];
  }
})();

export function testFault(point: string): void {
  for (const f of FAULTS) {
    const i = f.indexOf(":");
    if (f.slice(i + 1) !== point) continue;
    if (f.slice(0, i) === "kill") Deno.kill(Deno.pid, "SIGKILL");
    if (f.slice(0, i) === "enospc") {
      throw Object.assign(new Error(`No space left on device (os error 28) [DEIT_TEST_FAULT ${f}]`), {
        code: "ENOSPC",
      });
    }
  }
}

/** A full disk, as Deno reports it (`code` ENOSPC, os error 28), here or in an error's causes. */
export function isNoSpace(e: unknown): boolean {
  for (
    let x = e as { code?: string; message?: string; cause?: unknown } | undefined;
    x;
    x = x.cause as never
  ) {
    if (x.code === "ENOSPC" || /No space left on device|os error 28/.test(x.message ?? "")) return true;
  }
  return false;
}

async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown host";
  }
}

/** Whether process `pid` of this machine is alive. */
async function alive(pid: number): Promise<boolean> {
  if (await exists("/proc/self")) return await exists(`/proc/${pid}`);
  try {
    return (await new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" }).output()).success;
  } catch {
    return true; // cannot tell: keep its files
  }
}

/**
 * A run folder's lock: an exclusive OS lock on `<dir>/.lock` (released by the OS when its process ends, however
 * it ends, so a dead trainer's lock never blocks), with the holder's PID, host and start time inside for the
 * error another trainer gets.
 */
export class RunLock {
  private constructor(readonly path: string, private file: Deno.FsFile | null) {}

  static async acquire(dir: string): Promise<RunLock> {
    const path = `${dir}/${LOCK_FILE}`;
    for (let attempt = 0; attempt < 10; attempt++) {
      let file: Deno.FsFile | undefined, locked: boolean;
      try {
        file = await Deno.open(path, { read: true, write: true, create: true });
        locked = await file.tryLock(true);
      } catch (e) {
        file?.close();
        throw new TrainingError(`cannot lock ${path} (${e instanceof Error ? e.message : e})`, { cause: e });
      }
      if (!locked) {
        file.close();
        const holder = await Deno.readTextFile(path).catch(() => "");
        throw new TrainingError(
          `${dir} is in use by another trainer (${describeHolder(holder)}); two trainers on one run folder ` +
            "overwrite each other: wait for it to end or stop it, or choose another --out",
        );
      }
      // Its last holder may have removed the file between our open and our lock: hold the one at the path.
      const held = await file.stat();
      const now = await Deno.stat(path).catch(() => null);
      if (now && (held.ino === null || (now.ino === held.ino && now.dev === held.dev))) {
        const info = { pid: Deno.pid, host: hostname(), started: new Date().toISOString() };
        try {
          await file.truncate(0);
          await file.write(new TextEncoder().encode(JSON.stringify(info) + "\n"));
        } catch { /* who holds it is for messages only (a full disk may refuse even this) */ }
        return new RunLock(path, file);
      }
      file.close();
    }
    throw new TrainingError(`cannot lock ${path}: it keeps being replaced`);
  }

  /** Removes the lock file (while still holding it) and lets go. */
  release(): void {
    if (!this.file) return;
    try {
      Deno.removeSync(this.path);
    } catch { /* already gone */ }
    this.file.close();
    this.file = null;
  }
}

function describeHolder(text: string): string {
  try {
    const h = JSON.parse(text) as { pid: number; host: string; started: string };
    return `pid ${h.pid} on ${h.host}, started ${h.started}`;
  } catch {
    return "a trainer that is just starting";
  }
}

/** Removes `dir`'s temporary files (`*.tmp-PID`) whose process is gone; returns how many. */
export async function removeStaleTemps(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const pid = tempPid(e.name);
    if (!e.isFile || pid === null || pid === Deno.pid || (await alive(pid))) continue;
    await Deno.remove(`${dir}/${e.name}`).catch(() => {});
    n++;
  }
  return n;
}

/** Where a checkpoint stands, in words: "after epoch 3" or "epoch 4, batch 20". */
function position(st: TrainState): string {
  return st.loader.step === 0
    ? `after epoch ${st.loader.epoch - 1}`
    : `epoch ${st.loader.epoch}, batch ${st.loader.step}`;
}

const fmtAcc = (a: number | null | undefined) => (typeof a === "number" ? a.toFixed(2) : "none");

/** A log.jsonl line: its text as written, and its values. */
interface LogLine {
  raw: string;
  log: EpochLog;
}

export class RunState {
  readonly lastPath: string;
  readonly bestPath: string;
  readonly logPath: string;
  /** Epochs logged so far (a resumed run's earlier ones included). */
  logs: EpochLog[] = [];
  /** Optimiser steps taken. */
  globalStep = 0;
  /** Best test accuracy so far (−Infinity before the first evaluation). */
  best = -Infinity;
  /** The sums of the epoch a resumed run continues mid-way; taken once by the epoch loop. */
  partial?: EpochSums;
  /** When checkpoint-last was last written (performance.now()). */
  lastSave = performance.now();
  /** Set when a resume found the best accuracy without its checkpoint-best (and could not restore it). */
  bestMissing?: string;
  /** The weights of the last checkpoint written (internal layout). */
  #lastWeights: Record<string, Float32Array> = {};
  /** log.jsonl's lines as written, one per entry of {@link logs}. */
  #lines: string[] = [];
  /** The last good checkpoint, in words, for error messages. */
  #good?: string;
  /** The checkpoint to resume from. */
  #from: string;

  private constructor(
    readonly dir: string,
    readonly resuming: boolean,
    private readonly lock: RunLock,
    private readonly o: OpenOptions,
  ) {
    this.lastPath = `${dir}/${LAST_CHECKPOINT}`;
    this.bestPath = `${dir}/${BEST_CHECKPOINT}`;
    this.logPath = `${dir}/log.jsonl`;
    this.#from = o.resumeFrom ?? this.lastPath;
  }

  /**
   * The run folder `dir` (created and locked; stale temporary files removed). It resumes when asked to and
   * there is a checkpoint; `--resume` on a folder with nothing logged starts fresh (a sweep's first attempt),
   * on one with epochs logged but no checkpoint-last it is refused (`--restart` starts over). Without resume, a
   * folder that holds a run is refused (unless a smoke run or `restart`).
   */
  static async open(dir: string, o: OpenOptions): Promise<RunState> {
    if (o.restart && o.resumeFrom) throw new TrainingError("--restart and --resume-from exclude each other");
    const say = o.say ?? (() => {});
    await Deno.mkdir(dir, { recursive: true }).catch((e) => {
      throw new TrainingError(`cannot create ${dir} (${e instanceof Error ? e.message : e})`, { cause: e });
    });
    const lock = await RunLock.acquire(dir);
    try {
      const stale = await removeStaleTemps(dir);
      if (stale) say(`${dir}: removed ${stale} temporary file(s) left by killed processes`);
      const last = `${dir}/${LAST_CHECKPOINT}`;
      const logPath = `${dir}/log.jsonl`;
      if (o.restart) {
        const st = new RunState(dir, false, lock, o);
        await st.#clear(say);
        return st;
      }
      if (o.resumeFrom) {
        if (!(await exists(o.resumeFrom))) throw new TrainingError(`--resume-from: no file ${o.resumeFrom}`);
        return new RunState(dir, true, lock, o);
      }
      if (o.resume) {
        if (await exists(last)) return new RunState(dir, true, lock, o);
        const logged = await loggedEpochs(logPath);
        const st = new RunState(dir, false, lock, o);
        if (logged > 0) {
          throw new TrainingError(
            `${dir} has ${logged} epoch(s) in log.jsonl but no ${LAST_CHECKPOINT} to resume from; ` +
              (await st.#fallbacks()),
          );
        }
        return st;
      }
      if (!o.smoke && (await exists(logPath))) {
        throw new TrainingError(
          `${dir} already holds a run (log.jsonl); pass --resume to continue it, --restart to start it over, ` +
            "or choose --out",
        );
      }
      return new RunState(dir, false, lock, o);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** Lets go of the run folder. */
  close(): void {
    this.lock.release();
  }

  /** A fresh run: an empty log. A resumed one: see {@link resume}. */
  async start(s: RunSetup, say: (s: string) => void): Promise<void> {
    if (this.resuming) await this.resume(s, say);
    else await this.#write(this.logPath, () => writeFileAtomic(this.logPath, new Uint8Array()));
  }

  /**
   * Back to where the checkpoint (checkpoint-last, or `resumeFrom`) was saved: the weights, optimiser, EMA and
   * drop-path generators of every engine, the loader's position, the step count, the best accuracy, the sums of
   * an epoch in progress. Then what the epoch's commit should have been followed by, restored from it when a
   * stop came in between: the log up to that point (the checkpoint's own epoch line re-appended if the log lacks
   * it; lines of later epochs, e.g. after resuming from an older checkpoint, moved to log.redone.jsonl and
   * redone), checkpoint-best, and the epoch's snapshot.
   */
  async resume(s: RunSetup, say: (s: string) => void): Promise<void> {
    const cfg = s.config;
    const from = this.#from;
    let ckpt: TrainingCheckpoint;
    try {
      ckpt = parseTrainingCheckpoint(await readCheckpointFile(from));
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      throw new TrainingError(`cannot resume: ${e.message}; ${await this.#fallbacks(from)}`);
    }
    const st = ckpt.state;
    if (!st) {
      throw new TrainingError(
        `${from} holds no training state to resume from; ${await this.#fallbacks(from)}`,
      );
    }
    if (st.model !== cfg.model) {
      throw new TrainingError(`${from} is a ${st.model} run, the config says ${cfg.model}`);
    }
    loadStateDict(s.model, ckpt.weights, { source: from });
    // Weights and buffers (a RegNet's BatchNorm running statistics), as the checkpoint holds them.
    const w = { ...(await readAll(s.model.params)), ...(await readAll(s.model.buffers ?? new Map())) };
    await s.engines.setState(st.rng.map((rng) => ({
      weights: w,
      optim: { step: st.optim_step, slots: ckpt.optimSlots },
      ema: cfg.ema ? ckpt.ema : undefined,
      rng,
    })));
    s.loader.state = st.loader;
    this.globalStep = st.global_step;
    this.best = st.best_acc1;
    this.partial = st.loader.step > 0 ? st.partial : undefined;
    if (from !== this.lastPath) {
      // From now on the fallback is the run's checkpoint-last (a plain --resume continues from it).
      await this.#copy(from, this.lastPath);
      say(`resuming from ${from} (${position(st)}); it is now ${this.lastPath}`);
    }
    this.#good = `${this.lastPath} (${position(st)})`;
    await this.#restoreLog(st, ckpt.epochLog, say);
    const finished = st.loader.epoch >= s.epochs || ckpt.metadata.compacted !== undefined;
    if (!finished) {
      await this.#restoreBest(st, say);
      await this.#restoreSnapshot(s, st, ckpt, say);
    }
    say(
      `resuming ${this.dir} at epoch ${st.loader.epoch}, batch ${st.loader.step} (step ${this.globalStep})`,
    );
  }

  /** log.jsonl up to the checkpoint's position `st`, its epoch's line restored from `epochLog` if missing. */
  async #restoreLog(st: TrainState, epochLog: string | null, say: (s: string) => void): Promise<void> {
    const next = st.loader.epoch;
    let text = "";
    try {
      text = await Deno.readTextFile(this.logPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const rows = text.split("\n").map((raw, i) => ({ raw, i })).filter((r) => r.raw.trim());
    const lines: LogLine[] = [];
    let changed = false;
    for (const [k, { raw, i }] of rows.entries()) {
      try {
        lines.push({ raw, log: JSON.parse(raw) });
      } catch {
        // A kill or a full disk in the middle of an append leaves a torn last line.
        if (k < rows.length - 1) {
          throw new TrainingError(`${this.logPath} line ${i + 1} is damaged: ${raw.slice(0, 80)}`);
        }
        say(`log.jsonl: dropped a torn last line (a write cut short)`);
        changed = true;
      }
    }
    const later = lines.filter((l) => l.log.epoch >= next);
    const kept = lines.filter((l) => l.log.epoch < next);
    if (later.length) {
      changed = true;
      await this.#write(
        `${this.dir}/${REDONE_LOG}`,
        () =>
          Deno.writeTextFile(`${this.dir}/${REDONE_LOG}`, later.map((l) => l.raw + "\n").join(""), {
            append: true,
          }),
      );
      say(
        `log.jsonl: epoch(s) ${later[0].log.epoch}–${
          later[later.length - 1].log.epoch
        } were logged after the ` +
          `checkpoint resumed from (${position(st)}); they are redone (their lines moved to ${REDONE_LOG})`,
      );
    }
    if (epochLog !== null) {
      const log = JSON.parse(epochLog) as EpochLog;
      if (log.epoch === next - 1 && !kept.some((l) => l.log.epoch === log.epoch)) {
        kept.push({ raw: epochLog, log });
        changed = true;
        say(
          `log.jsonl: epoch ${log.epoch}'s line restored from its checkpoint (the run stopped before logging it)`,
        );
      }
    }
    const have = new Set(kept.map((l) => l.log.epoch));
    const missing = [...Array(next).keys()].filter((e) => !have.has(e));
    if (missing.length) {
      say(
        `warning: log.jsonl lacks the line(s) of epoch(s) ${
          missing.join(", ")
        }, and the checkpoint does not ` +
          "carry them (it was written before checkpoints did): they are lost",
      );
    }
    this.logs = kept.map((l) => l.log);
    this.#lines = kept.map((l) => l.raw);
    if (changed) {
      const body = new TextEncoder().encode(this.#lines.map((l) => l + "\n").join(""));
      await this.#write(this.logPath, () => writeFileAtomic(this.logPath, body));
    }
  }

  /**
   * checkpoint-best backs the best accuracy `st` carries: when it is missing, damaged or from elsewhere, and the
   * checkpoint is the end of the best epoch (the stop came between checkpoint-last and its copy), it is copied
   * again; otherwise {@link bestMissing} says so.
   */
  async #restoreBest(st: TrainState, say: (s: string) => void): Promise<void> {
    if (!Number.isFinite(st.best_acc1)) return;
    let why = "missing";
    if (await exists(this.bestPath)) {
      try {
        const b = parseTrainingCheckpoint(await readCheckpointFile(this.bestPath)).state;
        if (b?.best_acc1 === st.best_acc1) return;
        why = `from another point of a run (best ${fmtAcc(b?.best_acc1)})`;
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw e;
        why = "damaged";
      }
    }
    const line = this.logs.find((l) => l.epoch === st.loader.epoch - 1);
    if (st.loader.step === 0 && line?.test_acc1 === st.best_acc1) {
      await this.keepBest();
      say(
        `checkpoint-best was ${why}: copied again from ${this.lastPath} (epoch ${line.epoch}, the best so far)`,
      );
      return;
    }
    this.bestMissing = `checkpoint-best is ${why}: the best acc@1 so far, ${
      fmtAcc(st.best_acc1)
    }, has no weights file`;
    say(`warning: ${this.bestMissing}; the next epoch that beats it writes one`);
  }

  /** The epoch snapshot due at the checkpoint's position, written from it when a stop came before it was. */
  async #restoreSnapshot(s: RunSetup, st: TrainState, ckpt: TrainingCheckpoint, say: (s: string) => void) {
    const done = st.loader.epoch, every = s.config.snapshot_every;
    if (st.loader.step !== 0 || done === 0 || every <= 0 || s.smoke) return;
    if (done % every !== 0 && done < s.epochs) return;
    const line = this.logs.find((l) => l.epoch === done - 1);
    if (!line || (await exists(this.snapshotPath(done)))) return;
    await this.#writeSnapshot(done, ckpt.weights, s.data.numClasses, st.model, line.test_acc1 ?? NaN);
    say(`checkpoint-epoch-${done} written from ${this.lastPath} (the run stopped before it was)`);
  }

  /** config.json: the config, the values derived from it, how the run was started, commit, machine, date. */
  async writeConfig(s: RunSetup, origin: RunOrigin): Promise<void> {
    const meta = {
      config: s.config,
      derived: s.derived,
      config_source: origin.configSource ?? null,
      command: origin.command ?? null,
      commit: await gitCommit(),
      machine: await machineLine(),
      started: new Date().toISOString(),
      smoke: s.smoke,
    };
    const path = `${this.dir}/config.json`;
    const bytes = new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n");
    await this.#write(path, () => writeFileAtomic(path, bytes));
  }

  /**
   * checkpoint-last at the current position: every engine's state (engine 0's weights, optimiser and EMA: the
   * replicas are identical; every engine's generator), the loader's position, mid-epoch the epoch's sums, and
   * the log line of the last epoch done (`epochLog` for the epoch just ended, which is not logged yet): an epoch's
   * commit.
   */
  async checkpoint(s: RunSetup, partial?: EpochSums, epochLog?: string): Promise<void> {
    const states = await s.engines.getState();
    this.#lastWeights = states[0].weights;
    const state: TrainState = {
      format: 1,
      loader: s.loader.state,
      global_step: this.globalStep,
      best_acc1: this.best,
      ...(partial ? { partial } : {}),
      rng: states.map((e) => e.rng),
      optim_step: states[0].optim.step,
      model: s.config.model,
    };
    const i = this.logs.findLastIndex((l) => l.epoch === state.loader.epoch - 1);
    const line = epochLog ?? (i >= 0 ? this.#lines[i] : undefined);
    await this.#write(this.lastPath, () =>
      writeTrainingCheckpoint(
        this.lastPath,
        {
          weights: stateDictFrom(s.model, states[0].weights),
          optimSlots: states[0].optim.slots,
          ema: states[0].ema ?? {},
        },
        state,
        s.data.numClasses,
        line,
      ));
    this.#good = `${this.lastPath} (${position(state)})`;
    this.lastSave = performance.now();
  }

  /** checkpoint-best: a copy of the checkpoint-last just written (temporary file and rename). */
  async keepBest(): Promise<void> {
    await this.#copy(this.lastPath, this.bestPath);
    this.bestMissing = undefined;
  }

  snapshotPath(epochsDone: number): string {
    return `${this.dir}/checkpoint-epoch-${epochsDone}.safetensors`;
  }

  /** checkpoint-epoch-E (E = epochs done): the weights of the last checkpoint only, e.g. to pick a teacher. */
  async snapshot(s: RunSetup, epochsDone: number, testAcc1: number): Promise<void> {
    const weights = stateDictFrom(s.model, this.#lastWeights);
    await this.#writeSnapshot(epochsDone, weights, s.data.numClasses, s.config.model, testAcc1);
  }

  async #writeSnapshot(
    epochsDone: number,
    weights: StateDict,
    numClasses: number,
    arch: string,
    testAcc1: number,
  ): Promise<void> {
    const path = this.snapshotPath(epochsDone);
    await this.#write(path, () =>
      writeSafetensors(path, weights, {
        arch,
        num_classes: String(numClasses),
        epoch: String(epochsDone),
        test_acc1: String(testAcc1),
      }));
  }

  /**
   * One epoch's line, appended to log.jsonl after its commit (checkpoint-last, which carries `line`, the same
   * text). A failed append is cut back to the lines before it.
   */
  async appendLog(log: EpochLog, line = JSON.stringify(log)): Promise<void> {
    const size = await Deno.stat(this.logPath).then((s) => s.size, () => 0);
    await this.#write(this.logPath, async () => {
      try {
        testFault("append:log.jsonl");
        await Deno.writeTextFile(this.logPath, line + "\n", { append: true });
      } catch (e) {
        await Deno.truncate(this.logPath, size).catch(() => {});
        throw e;
      }
    });
    this.logs.push(log);
    this.#lines.push(line);
  }

  /** `--restart`: the folder's log and checkpoints removed (config.json and the sweep's files kept). */
  async #clear(say: (s: string) => void): Promise<void> {
    const gone: string[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      if (
        e.isFile &&
        (/^checkpoint-(last|best|epoch-\d+)\.safetensors$/.test(e.name) || e.name === "log.jsonl" ||
          e.name === REDONE_LOG)
      ) {
        await Deno.remove(`${this.dir}/${e.name}`);
        gone.push(e.name);
      }
    }
    if (gone.length) say(`--restart: removed ${gone.sort().join(", ")} from ${this.dir}`);
  }

  /**
   * What to do when the checkpoint to resume from is missing or damaged: the commands that go on, one per line
   * (checkpoint-best when it is readable, starting over; a note on the epoch snapshots, which hold weights only).
   */
  async #fallbacks(bad?: string): Promise<string> {
    const base = (this.o.command ?? "deno task train …")
      .replace(/\s--resume-from(=|\s+)\S+/g, "")
      .replace(/\s--(resume|restart)(?=\s|$)/g, "");
    const ways: string[] = [];
    if (bad !== this.bestPath && (await exists(this.bestPath))) {
      try {
        const b = parseTrainingCheckpoint(await readCheckpointFile(this.bestPath)).state;
        if (b) {
          ways.push(
            `continue from checkpoint-best (${position(b)}, acc@1 ${
              fmtAcc(b.best_acc1)
            }; the epochs after it ` +
              `are redone):\n    ${base} --resume-from ${this.bestPath}`,
          );
        }
      } catch { /* damaged too */ }
    }
    ways.push(`start over (log and checkpoints removed):\n    ${base} --restart`);
    const snaps: number[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      const m = e.name.match(/^checkpoint-epoch-(\d+)\.safetensors$/);
      if (m) snaps.push(Number(m[1]));
    }
    if (snaps.length) {
      const n = Math.max(...snaps);
      ways.push(
        `(checkpoint-epoch-${n} holds weights only, no optimiser state: it cannot continue this run, but a new ` +
          `run can start from its weights with --finetune ${this.snapshotPath(n)})`,
      );
    }
    return `to go on:\n  ${ways.join("\n  ")}`;
  }

  /** `src` copied to `dst` atomically. */
  async #copy(src: string, dst: string): Promise<void> {
    await this.#write(dst, async () => writeFileAtomic(dst, await Deno.readFile(src)));
  }

  /** Runs `write` (which writes `path`); a failure becomes one line naming the file and the last good checkpoint. */
  async #write(path: string, write: () => Promise<void>): Promise<void> {
    try {
      testFault(`write:${path.slice(path.lastIndexOf("/") + 1)}`);
      await write();
    } catch (e) {
      const good = this.#good
        ? `the last good checkpoint, ${this.#good}, is intact; `
        : "no checkpoint had been written yet; ";
      let cause: unknown = e;
      while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new TrainingError(
        isNoSpace(e)
          ? `no space left on device writing ${path}; ${good}free space, then --resume continues`
          : `cannot write ${path} (${why}); ${good}--resume continues`,
        { cause: e },
      );
    }
  }
}

/** The epoch lines in a log.jsonl (0 when there is none). */
async function loggedEpochs(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).length;
  } catch {
    return 0;
  }
}
