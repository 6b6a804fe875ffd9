/**
 * Tables of sweep runs: the live view of `deno task sweep` (a table redrawn on a terminal, plain lines in a
 * pipe) and `deno task sweep status`.
 */
import { fmtSeconds } from "../base/progress.ts";
import { formatTable } from "../base/text_table.ts";
import type { RunSpec } from "./grid.ts";
import type { SweepEntry } from "./queue.ts";
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

/**
 * What a running sweep shows: on a terminal a table of every run, redrawn in place; in a pipe one line per
 * state change and per new epoch, each stamped with the time since the sweep started.
 */
export class SweepView {
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  readonly #t0 = Date.now();
  /** Lines of the table drawn last (to redraw over). */
  #drawn = 0;

  constructor(tty: boolean, write: (text: string) => void) {
    this.#tty = tty;
    this.#write = write;
  }

  #stamp(): string {
    return `[${fmtSeconds((Date.now() - this.#t0) / 1000)}]`;
  }

  /** A plain line about a run (pipes only; the terminal's table shows the same). */
  say(e: SweepEntry, msg: string): void {
    if (!this.#tty) this.#write(`${this.#stamp()} ${e.run.id}: ${msg}\n`);
  }

  /** Redraw the table of the runs with a count of their states (terminals only). */
  draw(entries: SweepEntry[]): void {
    if (!this.#tty) return;
    const rows = entries.map((e) => {
      const secs = e.result.started
        ? ((e.result.ended ?? Date.now()) - e.result.started) / 1000
        : e.status.seconds;
      return [
        e.run.id,
        e.state,
        e.slot?.name ?? "",
        epochCell(e.status),
        pct(e.status.acc1),
        pct(e.status.best),
        elapsedCell(secs),
      ];
    });
    const table = formatTable(["run", "state", "device", "epoch", "acc1", "best", "elapsed"], rows);
    const counts = entries.reduce<Record<string, number>>((c, e) => {
      c[e.state] = (c[e.state] ?? 0) + 1;
      return c;
    }, {});
    const summary = `${this.#stamp()} ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
    const text = `${table}\n${summary}\n`;
    this.#write((this.#drawn > 0 ? `\x1b[${this.#drawn}A\x1b[J` : "") + text);
    this.#drawn = text.split("\n").length - 1;
  }
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
