/**
 * Result tables: one shape for every table the kit writes (results/NAME.md, .csv, .json) and shows in the
 * notebooks. A row holds the paper's value where there is one beside ours, and how ours was made (config,
 * command, commit).
 */
import { formatTable, markdownTable } from "../base/text_table.ts";

export type Cell = string | number | null;

export interface Column {
  key: string;
  title: string;
  /** Digits after the point for numbers (default 2). */
  digits?: number;
}

export interface ResultTable {
  /** File stem under results/ (e.g. "ablation"). */
  name: string;
  title: string;
  /** Paragraphs above the table: what was run, at which scale, how to read it. */
  intro: string[];
  columns: Column[];
  rows: Record<string, Cell>[];
  /** Lines below the table: findings, and where the paper's finding does not show here. */
  notes: string[];
  /** Facts about the whole table (e.g. date, machine), written at the top level of the JSON beside the rows. */
  meta?: Record<string, Cell>;
}

export function formatCell(v: Cell, digits = 2): string {
  if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return "—";
  return typeof v === "number" ? (Number.isInteger(v) && digits === 0 ? String(v) : v.toFixed(digits)) : v;
}

/** The column titles and each row's cells as the tables show them. */
export function tableCells(t: ResultTable): { header: string[]; rows: string[][] } {
  return {
    header: t.columns.map((c) => c.title),
    rows: t.rows.map((r) => t.columns.map((c) => formatCell(r[c.key], c.digits))),
  };
}

export function tableMarkdown(t: ResultTable): string {
  const { header, rows } = tableCells(t);
  const parts = [`# ${t.title}`, ...t.intro, markdownTable(header, rows), ...t.notes];
  return parts.join("\n\n") + "\n";
}

/** The table alone as plain text, for a terminal. */
export function tableText(t: ResultTable): string {
  const { header, rows } = tableCells(t);
  return formatTable(header, rows);
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function tableCsv(t: ResultTable): string {
  const lines = [t.columns.map((c) => csvField(c.key)).join(",")];
  for (const r of t.rows) {
    lines.push(
      t.columns.map((c) => {
        const v = r[c.key];
        return v === null || v === undefined ? "" : csvField(typeof v === "number" ? String(v) : v);
      }).join(","),
    );
  }
  return lines.join("\n") + "\n";
}

/** Writes DIR/NAME.md, .csv and .json (the rows with every key, numbers unrounded). */
export async function writeTable(t: ResultTable, dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const base = `${dir}/${t.name}`;
  await Deno.writeTextFile(`${base}.md`, tableMarkdown(t));
  await Deno.writeTextFile(`${base}.csv`, tableCsv(t));
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify({ ...t.meta, title: t.title, columns: t.columns, rows: t.rows, notes: t.notes }, null, 2) +
      "\n",
  );
  return [`${base}.md`, `${base}.csv`, `${base}.json`];
}

/** `Deno.jupyter.$display`, which is `Symbol.for("Jupyter.display")` (readable outside a kernel too). */
const JUPYTER_DISPLAY: typeof Deno.jupyter.$display = Symbol.for(
  "Jupyter.display",
) as typeof Deno.jupyter.$display;

/**
 * A table as a notebook output (a cell's last expression, or through `show` of lib/report/plots.ts): rendered
 * markdown, with the same markdown as its plain text. Any Jupyter kernel displays it through its
 * `Symbol.for("Jupyter.display")` method (Deno's `Deno.jupyter.$display`); it works outside a kernel too.
 */
export function tableDisplay(t: ResultTable): Deno.jupyter.Displayable {
  const md = tableMarkdown(t);
  return { [JUPYTER_DISPLAY]: () => ({ "text/markdown": md, "text/plain": md }) };
}
