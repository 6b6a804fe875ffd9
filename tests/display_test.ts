/**
 * Notebook display (lib/report/plots.ts `show`, lib/report/result_table.ts `tableDisplay`) outside a Jupyter
 * kernel: a table is a displayable with its markdown, and `show` prints text instead of failing on
 * `Deno.jupyter` (which throws outside `deno jupyter`). Inside the kernel, figures go through
 * `Deno.jupyter.svg` / `Deno.jupyter.image` (the notebooks run under `deno task reproduce`).
 */
import { assertEquals } from "@std/assert";
import { lineChart, show } from "../lib/report/plots.ts";
import { type ResultTable, tableDisplay, tableMarkdown } from "../lib/report/result_table.ts";

const TABLE: ResultTable = {
  name: "t",
  title: "A table",
  intro: [],
  columns: [{ key: "a", title: "A" }],
  rows: [{ a: 1.5 }],
  notes: [],
};

async function printed(f: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    await f();
  } finally {
    console.log = log;
  }
  return lines;
}

Deno.test("tableDisplay: the table's markdown as the Jupyter display bundle", async () => {
  const md = tableMarkdown(TABLE);
  const bundle = await tableDisplay(TABLE)[Symbol.for("Jupyter.display") as typeof Deno.jupyter.$display]();
  assertEquals(bundle, { "text/markdown": md, "text/plain": md });
});

Deno.test("show outside a kernel prints text, a table's markdown, or what a figure is", async () => {
  assertEquals(await printed(() => show("two\nlines")), ["two\nlines"]);
  assertEquals(await printed(() => show(tableDisplay(TABLE))), [tableMarkdown(TABLE)]);
  const fig = lineChart([{ name: "s", x: [0, 1], y: [1, 2] }], { x: "x", y: "y", title: "t" });
  assertEquals(await printed(() => show(fig)), ["(svg figure)"]);
});
