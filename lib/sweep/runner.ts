/**
 * Runs many training runs on local slots (lib/sweep/slots.ts): CPU slots or GPUs (one run per GPU:
 * lib/accel/gpu_select.ts `gpuEnv`, CUDA_VISIBLE_DEVICES for TensorFlow and Mesa's device selection for WebGPU).
 *
 * Done runs are skipped, started ones resume (`--resume`), a run waits until the runs it needs are done and is
 * blocked (not run) when one of them failed (lib/sweep/queue.ts). Each run's output goes to `<dir>/train.log`;
 * a failed run (nonzero exit) is recorded in `<dir>/sweep-status.json` with the tail of its output and does not
 * stop the others (lib/sweep/job.ts). Aborting `signal` stops starting runs and sends SIGTERM to the running
 * ones, which save checkpoint-last and exit; `kill` (a second Ctrl-C) sends SIGKILL instead.
 *
 * On a terminal a table is redrawn every second; in a pipe one plain line is printed per state change and per
 * new epoch (lib/sweep/view.ts).
 */
import type { CommandBuilder } from "./command.ts";
import { configChanges, type RunSpec } from "./grid.ts";
import { signalJob, startJob } from "./job.ts";
import { type RunResult, type Say, type SweepEntry, SweepQueue } from "./queue.ts";
import { type Slot, SlotPool, SweepError } from "./slots.ts";
import { runStatus } from "./status.ts";
import { epochCell, pct, SweepView } from "./view.ts";

export interface SweepResult {
  results: RunResult[];
  interrupted: boolean;
  failed: RunResult[];
  blocked: RunResult[];
}

export interface SweepOptions {
  slots: Slot[];
  /** What to start for a run (lib/sweep/command.ts `trainCommand(script)`, or a test's fake job). */
  command: CommandBuilder;
  /** Stop: SIGTERM to the running runs (they checkpoint), wait for them, start nothing more. */
  signal?: AbortSignal;
  /** Stop now: SIGKILL to the running runs. */
  kill?: AbortSignal;
  /** Redraw a table (default: stdout is a terminal); otherwise plain lines. */
  tty?: boolean;
  /** Where the view goes (default: stdout). */
  write?: (text: string) => void;
  /** Lines of output kept for a failed run (default 20). */
  tailLines?: number;
  /** Progress polling interval in ms (default 1000). */
  pollMs?: number;
}

/** Run the runs on the slots; returns when all are done, failed or blocked, or the sweep was aborted. */
export async function runSweep(runs: RunSpec[], opts: SweepOptions): Promise<SweepResult> {
  if (opts.slots.length === 0) throw new SweepError("no slots to run on");
  const enc = new TextEncoder();
  const view = new SweepView(
    opts.tty ?? Deno.stdout.isTerminal(),
    opts.write ?? ((t: string) => Deno.stdout.writeSync(enc.encode(t))),
  );
  const say = view.say.bind(view);
  const pollMs = opts.pollMs ?? 1000;
  const queue = await SweepQueue.load(runs);
  const pool = new SlotPool(opts.slots);
  const running = new Set<SweepEntry>();
  const wake = new Wakeup();
  const stopping = () => !!(opts.signal?.aborted || opts.kill?.aborted);
  onStop(opts, running, wake);
  await sayAlreadyDone(queue.order, say);

  const jobOptions = { command: opts.command, tailLines: opts.tailLines ?? 20, stopping, say };
  const launch = async (e: SweepEntry, slot: Slot) => {
    await startJob(e, slot, jobOptions);
    running.add(e);
    e.exit!.finally(() => {
      running.delete(e);
      pool.give(slot);
      wake.kick();
    });
  };

  const terminated = new Set<SweepEntry>();
  let lastPoll = 0;
  while (true) {
    wake.reset();
    const aborted = stopping();
    if (!aborted) {
      queue.blockStuck(say);
      for (const e of queue.startOrder) {
        if (pool.empty) break;
        if (e.state === "waiting" && queue.ready(e)) await launch(e, pool.take());
      }
    }
    if (running.size === 0) {
      queue.closeWaiting(aborted, say);
      break;
    }
    // Stopping: each running run gets one SIGTERM (it saves a checkpoint and exits).
    if (aborted) {
      for (const e of running) {
        if (terminated.has(e)) continue;
        terminated.add(e);
        signalJob(e, "SIGTERM");
      }
    }
    await wake.wait(Math.max(0, pollMs - (Date.now() - lastPoll)));
    if (Date.now() - lastPoll >= pollMs) {
      lastPoll = Date.now();
      await pollProgress(running, say);
      view.draw(queue.order);
    }
  }
  view.draw(queue.order);
  const results = queue.order.map((e) => e.result);
  return {
    results,
    interrupted: stopping(),
    failed: results.filter((r) => r.outcome === "failed"),
    blocked: results.filter((r) => r.outcome === "blocked"),
  };
}

/** `signal` wakes the sweep (it stops starting runs); `kill` sends SIGKILL to the running runs at once. */
function onStop(opts: SweepOptions, running: Set<SweepEntry>, wake: Wakeup): void {
  opts.signal?.addEventListener("abort", () => wake.kick());
  opts.kill?.addEventListener("abort", () => {
    for (const e of running) signalJob(e, "SIGKILL");
    wake.kick();
  });
}

/** A line for each run done before the sweep, with a note when its config differs from the grid's now. */
async function sayAlreadyDone(entries: SweepEntry[], say: Say): Promise<void> {
  for (const e of entries) {
    if (e.state !== "skipped") continue;
    const changed = await configChanges(e.run);
    say(
      e,
      `already done (${epochCell(e.status)} epochs, best ${pct(e.status.best)})` +
        (changed.length
          ? `; NOTE: with an older config (${changed.join(", ")}): delete the folder to redo it`
          : ""),
    );
  }
}

/** Re-read the running runs' folders; a line for each new epoch. */
async function pollProgress(running: Set<SweepEntry>, say: Say): Promise<void> {
  for (const e of running) {
    const before = e.status.epoch;
    e.status = await runStatus(e.run.dir, e.run.config.epochs);
    if (e.status.epoch > before) {
      say(e, `epoch ${epochCell(e.status)}, acc1 ${pct(e.status.acc1)}, best ${pct(e.status.best)}`);
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Wakes the scheduling loop (a run exited, the sweep was stopped); a wake while the loop is busy is kept. */
class Wakeup {
  #kicked = false;
  #resolve: (() => void) | undefined;

  kick(): void {
    this.#kicked = true;
    this.#resolve?.();
  }

  /** The loop is about to look at everything: earlier wakes are answered. */
  reset(): void {
    this.#kicked = false;
  }

  /** Until the next wake (at once when one came since {@link reset}) or `ms`. */
  async wait(ms: number): Promise<void> {
    const kick = this.#kicked ? Promise.resolve() : new Promise<void>((r) => (this.#resolve = r));
    await Promise.race([kick, sleep(ms)]);
    this.#resolve = undefined;
  }
}
