/**
 * Progress for long work: a redrawn bar on a terminal, plain lines (at most one every few seconds) in a pipe.
 */
export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #start = performance.now();
  #lastLine = 0;
  readonly #enc = new TextEncoder();
  /** Units already done when this bar started (a resumed epoch): the ETA uses only the rate seen here. */
  readonly #initial: number;

  constructor(total: number, label: string, opts: { tty?: boolean; initial?: number } = {}) {
    this.#total = total;
    this.#label = label;
    this.#tty = opts.tty ?? Deno.stderr.isTerminal();
    this.#initial = opts.initial ?? 0;
  }

  /** Seconds since start. */
  get elapsed(): number {
    return (performance.now() - this.#start) / 1000;
  }

  update(done: number, info = ""): void {
    const now = performance.now();
    const final = done >= this.#total;
    if (!this.#tty && !final && now - this.#lastLine < 5000) return;
    this.#lastLine = now;
    const frac = this.#total > 0 ? Math.min(done / this.#total, 1) : 1;
    const el = this.elapsed;
    const rate = (done - this.#initial) / el;
    const eta = rate > 0 ? (this.#total - done) / rate : NaN;
    const time = `${fmtSeconds(el)}${final ? "" : ` ETA ${fmtSeconds(eta)}`}`;
    const head = `${this.#label} ${done}/${this.#total}`;
    if (this.#tty) {
      const width = 24, filled = Math.round(frac * width);
      const bar = "█".repeat(filled) + "░".repeat(width - filled);
      Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[2K${head} ${bar} ${info} ${time}${final ? "\n" : ""}`));
    } else {
      console.error(`${head} ${info} ${time}`.replace(/\s+/g, " "));
    }
  }
}

/**
 * A duration, the one formatter of the kit. "compact" (progress bars, training and sweep logs): "40.0s",
 * "12m05s", "1h05m", "?" when unknown. "words" (result tables, reports): "40 s", "12 min", "1 h 05 min", "—"
 * when unknown.
 */
export function fmtSeconds(s: number, style: "compact" | "words" = "compact"): string {
  if (style === "words") {
    if (!Number.isFinite(s)) return "—";
    if (s < 60) return `${Math.round(s)} s`;
    const min = Math.round(s / 60);
    return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min`;
  }
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0
    ? `${h}h${String(m % 60).padStart(2, "0")}m`
    : `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}
