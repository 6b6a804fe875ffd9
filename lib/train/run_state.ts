/**
 * A run's state and its folder: where the run stands (optimiser steps, best accuracy, the sums of an epoch in
 * progress, the epochs logged), and the files that keep it — log.jsonl, config.json and the checkpoints, whose
 * format lib/io/train_state.ts owns. A run starts fresh or resumes from checkpoint-last to the position it was
 * saved at.
 */
import { loadStateDict, readCheckpointFile, stateDictFrom } from "../io/checkpoint.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import {
  BEST_CHECKPOINT,
  LAST_CHECKPOINT,
  parseTrainingCheckpoint,
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
  finished?: boolean;
}

/** Sums of an epoch in progress, as a mid-epoch checkpoint keeps them. */
export type EpochSums = NonNullable<TrainState["partial"]>;

/** How the run was started, for config.json. */
export interface RunOrigin {
  command?: string;
  configSource?: string;
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
  /** The weights of the last checkpoint written (internal layout). */
  #lastWeights: Record<string, Float32Array> = {};

  private constructor(readonly dir: string, readonly resuming: boolean) {
    this.lastPath = `${dir}/${LAST_CHECKPOINT}`;
    this.bestPath = `${dir}/${BEST_CHECKPOINT}`;
    this.logPath = `${dir}/log.jsonl`;
  }

  /**
   * The run folder `dir` (created): resumed when `resume` is asked for and it holds checkpoint-last; a folder
   * that already holds a run is refused unless resumed (or a smoke run).
   */
  static async open(dir: string, o: { resume?: boolean; smoke?: boolean }): Promise<RunState> {
    await Deno.mkdir(dir, { recursive: true });
    const st = new RunState(dir, !!o.resume && (await exists(`${dir}/${LAST_CHECKPOINT}`)));
    if (!o.resume && !o.smoke && (await exists(st.logPath))) {
      throw new TrainingError(
        `${dir} already holds a run (log.jsonl); pass --resume to continue it or choose --out`,
      );
    }
    return st;
  }

  /** A fresh run: an empty log. A resumed one: see {@link resume}. */
  async start(s: RunSetup, say: (s: string) => void): Promise<void> {
    if (this.resuming) await this.resume(s, say);
    else await Deno.writeTextFile(this.logPath, "");
  }

  /**
   * Back to where checkpoint-last was saved: the weights, optimiser, EMA and drop-path generators of every
   * engine, the loader's position, the step count, the best accuracy, the sums of an epoch in progress; and the
   * log up to that point (epochs logged after the checkpoint, a kill between log and checkpoint, are redone).
   */
  async resume(s: RunSetup, say: (s: string) => void): Promise<void> {
    const cfg = s.config;
    const ckpt = parseTrainingCheckpoint(await readCheckpointFile(this.lastPath));
    const st = ckpt.state;
    if (!st) throw new TrainingError(`${this.lastPath} holds no training state to resume from`);
    if (st.model !== cfg.model) {
      throw new TrainingError(`${this.lastPath} is a ${st.model} run, the config says ${cfg.model}`);
    }
    loadStateDict(s.model, ckpt.weights, { source: this.lastPath });
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
    for (const line of (await Deno.readTextFile(this.logPath)).split("\n")) {
      if (line.trim()) this.logs.push(JSON.parse(line));
    }
    while (this.logs.length && this.logs[this.logs.length - 1].epoch >= st.loader.epoch) this.logs.pop();
    await Deno.writeTextFile(this.logPath, this.logs.map((l) => JSON.stringify(l) + "\n").join(""));
    say(
      `resuming ${this.dir} at epoch ${st.loader.epoch}, batch ${st.loader.step} (step ${this.globalStep})`,
    );
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
    await Deno.writeTextFile(`${this.dir}/config.json`, JSON.stringify(meta, null, 2) + "\n");
  }

  /**
   * checkpoint-last at the current position: every engine's state (engine 0's weights, optimiser and EMA: the
   * replicas are identical; every engine's generator), the loader's position, and — mid-epoch — the epoch's sums.
   */
  async checkpoint(s: RunSetup, partial?: EpochSums): Promise<void> {
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
    await writeTrainingCheckpoint(
      this.lastPath,
      {
        weights: stateDictFrom(s.model, states[0].weights),
        optimSlots: states[0].optim.slots,
        ema: states[0].ema ?? {},
      },
      state,
      s.data.numClasses,
    );
    this.lastSave = performance.now();
  }

  /** checkpoint-best: a copy of the checkpoint-last just written (temporary file and rename). */
  async keepBest(): Promise<void> {
    const tmp = `${this.bestPath}.tmp-${Deno.pid}`;
    await Deno.copyFile(this.lastPath, tmp).then(() => Deno.rename(tmp, this.bestPath));
  }

  /** checkpoint-epoch-E (E = epochs done): the weights of the last checkpoint only, e.g. to pick a teacher. */
  async snapshot(s: RunSetup, epochsDone: number, testAcc1: number): Promise<void> {
    await writeSafetensors(
      `${this.dir}/checkpoint-epoch-${epochsDone}.safetensors`,
      stateDictFrom(s.model, this.#lastWeights),
      {
        arch: s.config.model,
        num_classes: String(s.data.numClasses),
        epoch: String(epochsDone),
        test_acc1: String(testAcc1),
      },
    );
  }

  /** One epoch's line, appended to log.jsonl (after its checkpoint: a kill in between redoes the epoch). */
  async appendLog(log: EpochLog): Promise<void> {
    await Deno.writeTextFile(this.logPath, JSON.stringify(log) + "\n", { append: true });
    this.logs.push(log);
  }
}
