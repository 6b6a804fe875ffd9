/**
 * Tables of sweep runs: the live view of `deno task sweep` (a table redrawn on a terminal, plain lines in a
 * pipe) and `deno task sweep status`.
 */
import { fmtSeconds } from "../base/progress.ts";
import { formatTable } from "../base/text_table.ts";
import type { RunSpec } from "./grid.ts";
import type { SweepEntry } from "./queue.ts";
import { median, type RunStatus, runStatus } from "./status.ts";

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

/**
 * What decides an epoch's cost: runs that agree on these take about as long per epoch (another number of
 * epochs, seed or recipe detail does not change it much).
 */
function costKey(r: RunSpec): string {
  const c = r.config;
  return JSON.stringify([c.model, c.dataset, c.train_limit, c.img_size, c.batch_size, c.teacher, c.workers]);
}

/**
 * Seconds each run has left, from the pace of the epochs logged last (the median of up to 10): its own once it
 * has logged an epoch, else the median pace of the runs with the same model, data, image size, batch, teacher
 * and engines; null when no such run has logged one (0 when done). A pace measured while the machine did other
 * work too is slower than a quiet one.
 */
export function timeLeft(runs: RunSpec[], states: RunStatus[]): (number | null)[] {
  const paces = new Map<string, number[]>();
  for (const [i, r] of runs.entries()) {
    if (!Number.isFinite(states[i].epochSeconds)) continue;
    paces.set(costKey(r), [...(paces.get(costKey(r)) ?? []), states[i].epochSeconds]);
  }
  return runs.map((r, i) => {
    const s = states[i];
    if (s.state === "done") return 0;
    const left = (s.epochs ?? r.config.epochs) - (s.epoch + 1);
    if (Number.isFinite(s.epochSeconds)) return left * s.epochSeconds;
    const p = paces.get(costKey(r));
    return p ? left * median(p) : null;
  });
}

/** One row per run, read from the run folders, with the time each has left: `deno task sweep status`. */
export async function statusTable(
  runs: RunSpec[],
): Promise<{ table: string; states: RunStatus[]; left: (number | null)[] }> {
  const states = await Promise.all(runs.map((r) => runStatus(r.dir, r.config.epochs)));
  const left = timeLeft(runs, states);
  const rows = runs.map((r, i) => {
    const s = states[i];
    const l = left[i];
    return [
      r.id,
      r.row.label ?? "",
      s.state,
      epochCell(s),
      pct(s.acc1),
      pct(s.best),
      pct(r.row.paper),
      elapsedCell(s.seconds),
      l === null ? "?" : l > 0 ? `~${fmtSeconds(l)}` : "—",
      r.dir,
    ];
  });
  return {
    table: formatTable(
      ["run", "label", "state", "epoch", "acc1", "best", "paper", "time", "left", "folder"],
      rows,
    ),
    states,
    left,
  };
}
