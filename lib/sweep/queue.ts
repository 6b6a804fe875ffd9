/**
 * The rows of a sweep and their order: one entry per run (its state, slot, last status read from its folder
 * and its result), which runs wait for which, which can start and which are blocked by a need that failed.
 */
import type { RunSpec } from "./grid.ts";
import type { Slot } from "./slots.ts";
import { SweepError } from "./slots.ts";
import { type RunStatus, runStatus } from "./status.ts";

export type Outcome = "done" | "skipped" | "failed" | "blocked" | "interrupted";

export interface RunResult {
  id: string;
  dir: string;
  /** skipped: already done before the sweep; interrupted: stopped by the abort (resumable). */
  outcome: Outcome;
  slot?: string;
  /** Whether it was started with --resume. */
  resumed?: boolean;
  /** Exit code of a failed run. */
  code?: number;
  /** The last lines of a failed run's output. */
  tail?: string;
  /** Why a run was blocked. */
  reason?: string;
  /** Date.now() at start and exit. */
  started?: number;
  ended?: number;
}

/** One run of the sweep as the sweep follows it. */
export interface SweepEntry {
  run: RunSpec;
  state: "waiting" | "running" | Outcome;
  slot?: Slot;
  status: RunStatus;
  result: RunResult;
  /** Its process while it runs. */
  child?: Deno.ChildProcess;
  /** Settles when it has ended and its outcome is recorded. */
  exit?: Promise<void>;
}

/** Say something about a run (the view's plain line). */
export type Say = (entry: SweepEntry, msg: string) => void;

/** Set a run's final state and result. */
export function finish(e: SweepEntry, outcome: Outcome, extra: Partial<RunResult> = {}): void {
  e.state = outcome;
  Object.assign(e.result, { outcome, ...extra });
}

const BAD = new Set<SweepEntry["state"]>(["failed", "blocked", "interrupted"]);

/** The runs of a sweep: done ones are skipped, the others wait; runs that others need go first. */
export class SweepQueue {
  /** The entries in the order the runs were given (the order of the results). */
  readonly order: SweepEntry[];
  /** The order runs start in: most dependents first, then as given. */
  readonly startOrder: SweepEntry[];
  readonly #byId: Map<string, SweepEntry>;

  private constructor(entries: SweepEntry[]) {
    this.order = entries;
    this.#byId = new Map(entries.map((e) => [e.run.id, e]));
    const dependents = this.#dependents();
    this.startOrder = [...entries].sort((a, b) =>
      (dependents.get(b.run.id)?.size ?? 0) - (dependents.get(a.run.id)?.size ?? 0)
    );
  }

  /** Entries for the runs, each with its status read from its folder. */
  static async load(runs: RunSpec[]): Promise<SweepQueue> {
    const entries: SweepEntry[] = [];
    const ids = new Set<string>();
    for (const run of runs) {
      if (ids.has(run.id)) throw new SweepError(`run ${run.id} is listed twice`);
      ids.add(run.id);
      const status = await runStatus(run.dir, run.config.epochs);
      const result: RunResult = { id: run.id, dir: run.dir, outcome: "skipped" };
      entries.push({ run, state: status.state === "done" ? "skipped" : "waiting", status, result });
    }
    return new SweepQueue(entries);
  }

  /** For each run, the runs that need it (directly or through others). */
  #dependents(): Map<string, Set<string>> {
    const dependents = new Map<string, Set<string>>();
    const add = (need: string, id: string) => {
      const set = dependents.get(need) ?? new Set<string>();
      if (set.has(id)) return;
      set.add(id);
      dependents.set(need, set);
      for (const n of this.#byId.get(need)?.run.needs ?? []) add(n, id);
    };
    for (const e of this.order) for (const n of e.run.needs) add(n, e.run.id);
    return dependents;
  }

  /** Every need of a waiting run is done (now or before the sweep). */
  ready(e: SweepEntry): boolean {
    return e.run.needs.every((n) => ["done", "skipped"].includes(this.#byId.get(n)!.state));
  }

  /** Why a waiting run can never start: a need failed, is blocked or is not part of the sweep ("" if none). */
  #blockedBy(e: SweepEntry): string {
    return e.run.needs.map((n) => {
      const need = this.#byId.get(n);
      if (!need) return `needs ${n}, which is not part of this sweep`;
      return BAD.has(need.state)
        ? `needs ${n}, which ${need.state === "blocked" ? "is blocked" : "failed"}`
        : "";
    }).find((w) => w) ?? "";
  }

  /** Block the waiting runs that can never start (until no more are). */
  blockStuck(say: Say): void {
    let changed = true;
    while (changed) {
      changed = false;
      for (const e of this.order) {
        if (e.state !== "waiting") continue;
        const why = this.#blockedBy(e);
        if (why) {
          finish(e, "blocked", { reason: why });
          say(e, `blocked: ${why}`);
          changed = true;
        }
      }
    }
  }

  /** Nothing runs any more: the runs still waiting were stopped (the sweep was aborted) or can never run. */
  closeWaiting(aborted: boolean, say: Say): void {
    for (const e of this.order) {
      if (e.state !== "waiting") continue;
      if (aborted) finish(e, "interrupted", { reason: "the sweep was stopped before it started" });
      else {
        // Cannot happen with checked needs (no cycles); kept so the sweep always ends.
        finish(e, "blocked", { reason: "its needs can never be done" });
        say(e, "blocked: its needs can never be done");
      }
    }
  }
}
