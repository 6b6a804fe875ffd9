/**
 * Every committed figure is rendered as a picture and checked for text and marks outside its canvas (which a
 * viewer would cut off): results/figures/*.svg and the SVG outputs saved in the notebooks.
 */
import { assert, assertEquals } from "@std/assert";
import { describeOverflow, overflowOf } from "../lib/report/figure_check.ts";
import { REPO_ROOT } from "../lib/base/paths.ts";
import { barChart, differenceChart, heatmapGrid, lineChart } from "../lib/report/plots.ts";

const ROOT = `${REPO_ROOT}/`;

async function committedFigures(): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const e of Deno.readDir(`${ROOT}results/figures`)) {
    if (e.name.endsWith(".svg")) {
      out.push([`results/figures/${e.name}`, await Deno.readTextFile(`${ROOT}results/figures/${e.name}`)]);
    }
  }
  for await (const e of Deno.readDir(`${ROOT}notebooks`)) {
    if (!e.name.endsWith(".ipynb")) continue;
    const nb = JSON.parse(await Deno.readTextFile(`${ROOT}notebooks/${e.name}`));
    let k = 0;
    for (
      const [c, cell] of (nb.cells as { outputs?: { data?: Record<string, string | string[]> }[] }[])
        .entries()
    ) {
      for (const o of cell.outputs ?? []) {
        const svg = o.data?.["image/svg+xml"];
        if (svg) {
          out.push([`notebooks/${e.name} cell ${c} figure ${k++}`, Array.isArray(svg) ? svg.join("") : svg]);
        }
      }
    }
  }
  return out.sort();
}

Deno.test("every committed figure stays inside its canvas", async () => {
  const figures = await committedFigures();
  assert(figures.length >= 5, `only ${figures.length} figures found`);
  const bad: string[] = [];
  for (const [name, svg] of figures) {
    const d = describeOverflow(await overflowOf(svg));
    if (d) bad.push(`${name}: ink outside the canvas (${d})`);
  }
  assertEquals(bad, []);
});

Deno.test("the check sees a label cut off at the right edge, and the plot helpers size their margins to labels", async () => {
  const cut = `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40">` +
    `<text x="60" y="20" font-size="14">a label too long for this canvas</text></svg>`;
  const o = await overflowOf(cut);
  assert(o.right > 0 && o.left === 0, JSON.stringify(o));
  const long = "a very long series name that would not fit a fixed margin";
  for (
    const f of [
      lineChart([{ name: long, x: [1, 2], y: [3, 4] }], { x: "epoch", y: "top-1", title: long + " " + long }),
      barChart([{ label: long + long, value: 50, group: "ours, a long group name" }], { x: "top-1" }),
      heatmapGrid([{ row: long, column: "class token", side: 2, values: [0, 1, 2, 3] }], { title: long }),
      differenceChart([{ row: long, pair: "seed 0", value: -12.5 }], [{ row: long, value: 3.9 }, {
        row: "pending",
        value: 0.4,
      }], { x: "difference in test top-1 (points; > 0: the paper's order)", refLabel: "paper", title: long }),
    ]
  ) assertEquals(describeOverflow(await overflowOf(f.data as string)), "");
});
