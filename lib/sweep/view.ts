/** Tables of sweep runs: the live view of `deno task sweep` and `deno task sweep status`. */
import { fmtSeconds } from "../base/progress.ts";
import { formatTable } from "../base/text_table.ts";
import type { RunSpec } from "./grid.ts";
import { type RunStatus, runStatus } from "./status.ts";

/** "3/10" (epochs done of the run's), "—" before the first. */
export function epochCell(s: Pick<RunStatus, "epoch" | "epochs">): string {
  const total = s.epochs ?? "?";
  return s.epoch < 0 ? `0/${total}` : `${s.epoch + 1}/${total}`;
}

/** A percentage with 2 decimals, "—" when unknown. */
export function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : v.toFixed(2);
}

export function elapsedCell(seconds: number): string {
  return seconds > 0 ? fmtSeconds(seconds) : "—";
}

/** One row per run, read from the run folders: `deno task sweep status`. */
export async function statusTable(runs: RunSpec[]): Promise<{ table: string; states: RunStatus[] }> {
  const states = await Promise.all(runs.map((r) => runStatus(r.dir, r.config.epochs)));
  const rows = runs.map((r, i) => {
    const s = states[i];
    return [
      r.id,
      r.row.label ?? "",
      s.state,
      epochCell(s),
      pct(s.acc1),
      pct(s.best),
      pct(r.row.paper),
      elapsedCell(s.seconds),
      r.dir,
    ];
  });
  return {
    table: formatTable(["run", "label", "state", "epoch", "acc1", "best", "paper", "time", "folder"], rows),
    states,
  };
}
