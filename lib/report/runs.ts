/**
 * Reading finished (or unfinished) training runs back from their folders: `config.json` and `log.jsonl` as
 * `lib/train/run.ts` writes them. The tables, plots and notebooks read runs only through this.
 */
import type { TrainConfig } from "../train/config.ts";
import type { Derived, EpochLog } from "../train/run.ts";
import { repoPath } from "../base/paths.ts";

export interface RunRecord {
  dir: string;
  config: TrainConfig;
  derived: Derived;
  command: string | null;
  commit: string | null;
  machine: string | null;
  /** One entry per finished epoch, in order (NaN where an epoch was not evaluated). */
  logs: EpochLog[];
  /** All epochs of the config are logged. */
  done: boolean;
  /** Last evaluated epoch's test top-1/top-5 (the figure the tables report; not the best epoch). */
  acc1: number;
  acc5: number;
  best_acc1: number;
  /** Training wall time so far (sum of the epochs' seconds as logged, which include evaluation). */
  seconds: number;
}

export class RunNotFoundError extends Error {
  override name = "RunNotFoundError";
}

/**
 * The run in `dir` (relative paths are from the repository root), or null when the folder holds no run yet.
 * A corrupt file is an error naming it.
 */
export async function readRun(dir: string): Promise<RunRecord | null> {
  const d = repoPath(dir);
  let meta: { config: TrainConfig; derived: Derived; command?: string; commit?: string; machine?: string };
  let logText: string;
  try {
    meta = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
    logText = await Deno.readTextFile(`${d}/log.jsonl`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${dir}: cannot read the run (${(e as Error).message})`);
  }
  const logs: EpochLog[] = [];
  for (const [i, line] of logText.split("\n").entries()) {
    if (!line.trim()) continue;
    try {
      const l = JSON.parse(line);
      for (const k of ["test_acc1", "test_acc5", "test_loss"] as const) l[k] ??= NaN;
      logs.push(l);
    } catch {
      throw new Error(`${dir}/log.jsonl: line ${i + 1} is not JSON`);
    }
  }
  const evaluated = logs.filter((l) => Number.isFinite(l.test_acc1));
  const last = evaluated[evaluated.length - 1];
  return {
    dir,
    config: meta.config,
    derived: meta.derived,
    command: meta.command ?? null,
    commit: meta.commit ?? null,
    machine: meta.machine ?? null,
    logs,
    done: logs.length > 0 && logs[logs.length - 1].epoch >= meta.config.epochs - 1,
    acc1: last?.test_acc1 ?? NaN,
    acc5: last?.test_acc5 ?? NaN,
    best_acc1: last?.best_acc1 ?? NaN,
    seconds: logs.reduce((s, l) => s + l.seconds, 0),
  };
}

/** {@link readRun}, but a missing run is an error saying how to make it. */
export async function requireRun(dir: string, how: string): Promise<RunRecord> {
  const r = await readRun(dir);
  if (!r) throw new RunNotFoundError(`no run in ${dir}: ${how}`);
  return r;
}

/**
 * One curve of a run for a chart: x = epochs completed (1-based) + `xOffset` (a fine-tune drawn after the run it
 * starts from), y = a logged key (epochs not evaluated skipped).
 */
export function runSeries(
  run: RunRecord | null,
  name: string,
  key: "test_acc1" | "test_acc5" | "train_loss" | "test_loss" | "train_acc1" = "test_acc1",
  xOffset = 0,
): { name: string; x: number[]; y: number[] } {
  const logs = (run?.logs ?? []).filter((l) => Number.isFinite(l[key] ?? NaN));
  return { name, x: logs.map((l) => l.epoch + 1 + xOffset), y: logs.map((l) => l[key]!) };
}
