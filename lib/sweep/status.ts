/**
 * Where a run stands, read from its folder alone (so `deno task sweep status` works wherever the runs ran):
 *
 *   pending   no log.jsonl yet
 *   partial   started (log.jsonl, usually checkpoint-last) but not every epoch logged
 *   done      log.jsonl has the line of the last epoch (epochs from config.json, or given)
 *   failed    the sweep recorded a failure in sweep-status.json (exit code, the tail of train.log); the next
 *             successful attempt removes it
 */
import { exists, repoPath } from "../base/paths.ts";

export type RunState = "pending" | "partial" | "done" | "failed";

export interface RunStatus {
  state: RunState;
  /** Last epoch logged (-1: none). */
  epoch: number;
  /** Epochs of the run (undefined while unknown: no config.json and none given). */
  epochs?: number;
  /** Last evaluated top-1 and the best so far (NaN when none). */
  acc1: number;
  best: number;
  /** Training seconds logged so far. */
  seconds: number;
  /** The median seconds of the last (up to 10) epochs logged: the run's pace now (NaN before the first). */
  epochSeconds: number;
  /** A checkpoint to resume from exists. */
  checkpoint: boolean;
  /** The failure the sweep recorded (state "failed"). */
  failure?: SweepFailure;
}

/** `<dir>/sweep-status.json`, written by the sweep when a run fails. */
export interface SweepFailure {
  state: "failed";
  code: number;
  /** The last lines of the run's output. */
  tail: string;
  at: string;
}

export const STATUS_FILE = "sweep-status.json";

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

/** The state of the run folder `dir` (relative: from the repository root). */
export async function runStatus(dir: string, epochs?: number): Promise<RunStatus> {
  const d = repoPath(dir);
  const logText = await readText(`${d}/log.jsonl`);
  if (epochs === undefined) {
    const cfg = await readText(`${d}/config.json`);
    if (cfg) {
      try {
        const meta = JSON.parse(cfg);
        const e = meta?.derived?.epochs ?? meta?.config?.epochs;
        if (typeof e === "number") epochs = e;
      } catch { /* a config.json being written */ }
    }
  }
  const checkpoint = await exists(`${d}/checkpoint-last.safetensors`);
  let failure: SweepFailure | undefined;
  const st = await readText(`${d}/${STATUS_FILE}`);
  if (st) {
    try {
      const j = JSON.parse(st);
      if (j?.state === "failed") failure = j;
    } catch { /* ignore a torn file */ }
  }
  const s: RunStatus = {
    state: "pending",
    epoch: -1,
    epochs,
    acc1: NaN,
    best: NaN,
    seconds: 0,
    epochSeconds: NaN,
    checkpoint,
  };
  const paces: number[] = [];
  if (logText !== null) {
    s.state = "partial";
    for (const line of logText.split("\n")) {
      if (!line.trim()) continue;
      let l;
      try {
        l = JSON.parse(line);
      } catch {
        continue; // a line being appended
      }
      if (typeof l.epoch !== "number") continue;
      s.epoch = l.epoch;
      if (typeof l.seconds === "number") {
        s.seconds += l.seconds;
        paces.push(l.seconds);
      }
      if (typeof l.test_acc1 === "number" && Number.isFinite(l.test_acc1)) s.acc1 = l.test_acc1;
      if (typeof l.best_acc1 === "number" && Number.isFinite(l.best_acc1)) s.best = l.best_acc1;
    }
    if (epochs !== undefined && s.epoch >= epochs - 1) s.state = "done";
    if (paces.length) s.epochSeconds = median(paces.slice(-10));
  }
  if (failure && s.state !== "done") {
    s.state = "failed";
    s.failure = failure;
  }
  return s;
}

/** The median of `xs` (non-empty). */
export function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b), m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Record a failed attempt in the run folder. */
export async function recordFailure(dir: string, code: number, tail: string): Promise<void> {
  const f: SweepFailure = { state: "failed", code, tail, at: new Date().toISOString() };
  await Deno.writeTextFile(`${repoPath(dir)}/${STATUS_FILE}`, JSON.stringify(f, null, 2) + "\n");
}

/** Forget a recorded failure (a later attempt succeeded, or a new one starts). */
export async function clearFailure(dir: string): Promise<void> {
  await Deno.remove(`${repoPath(dir)}/${STATUS_FILE}`).catch(() => {});
}
