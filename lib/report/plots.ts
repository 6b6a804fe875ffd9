/**
 * Figures as real pictures, rendered headless: SVG from Observable Plot on a linkedom document, PNG from
 * sharp for image grids. Each returns the picture; `display` wraps one for a notebook cell and `saveFigure`
 * writes it under results/figures/.
 */
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import sharp from "sharp";
import type { ImageU8 } from "../data/dataset.ts";

export interface Figure {
  kind: "svg" | "png";
  /** SVG text, or PNG bytes. */
  data: string | Uint8Array;
}

function escapeXml(t: string): string {
  return t.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * Width of a text in pixels, estimated for DejaVu Sans (what `system-ui` falls back to headless): 0.62 em a
 * character on average, a little more for capitals. Margins and canvases are sized with it, so that no label
 * is cut off (tests/figures_test.ts renders every figure and checks).
 */
export function textWidth(text: string, fontSize = 10, bold = false): number {
  let em = 0;
  for (const ch of text) em += /[A-Z%@MWmw—]/.test(ch) ? 0.78 : /[ il.,:;|'()[\]!]/.test(ch) ? 0.34 : 0.6;
  return Math.ceil(em * fontSize * (bold ? 1.1 : 1));
}

/** The root <svg> element of Plot's output (the plot itself, or a legend). */
function svgOf(node: unknown): { svg: string; width: number; height: number } {
  let svg = (node as { outerHTML: string }).outerHTML;
  svg = svg.slice(svg.indexOf("<svg"), svg.lastIndexOf("</svg>") + 6);
  if (!svg.includes('xmlns="http://www.w3.org/2000/svg"')) {
    svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  }
  const width = Number(svg.match(/width="([\d.]+)"/)?.[1] ?? 640);
  const height = Number(svg.match(/height="([\d.]+)"/)?.[1] ?? 400);
  return { svg, width, height };
}

/**
 * A horizontal colour bar for a continuous colour scale: the ramp, its label, and ticks at both ends and the
 * middle. Drawn as rectangles (Plot's own ramp legend paints through a canvas, which a headless DOM lacks).
 */
function colourBar(
  o: Plot.ScaleOptions & { label?: string },
): { svg: string; width: number; height: number } {
  const scale = Plot.scale({ color: o });
  const [lo, hi] = (o.domain ?? [0, 1]) as [number, number];
  const n = 64, w = 240, x0 = 16, y0 = 18;
  const rects = Array.from({ length: n }, (_, i) => {
    const v = lo + ((hi - lo) * (i + 0.5)) / n;
    return `<rect x="${x0 + (w * i) / n}" y="${y0}" width="${w / n + 0.5}" height="10" fill="${
      scale.apply(v)
    }"/>`;
  }).join("");
  const fmt = (v: number) => (Math.abs(hi - lo) >= 10 ? v.toFixed(0) : v.toPrecision(2));
  const ticks = [0, 0.5, 1].map((t) => {
    const x = x0 + w * t, v = lo + (hi - lo) * t;
    return `<line x1="${x}" x2="${x}" y1="${y0 + 10}" y2="${y0 + 14}" stroke="black"/>` +
      `<text x="${x}" y="${y0 + 24}" font-size="10" text-anchor="middle">${fmt(v)}</text>`;
  }).join("");
  const label = escapeXml(o.label ?? "");
  const width = Math.max(w + 2 * x0 + 12, textWidth(o.label ?? "") + 16);
  return {
    svg:
      `<svg width="${width}" height="48"><text x="${x0}" y="12" font-size="10">${label}</text>${rects}${ticks}</svg>`,
    width,
    height: 48,
  };
}

/** A row of colour swatches, one per group of a categorical colour scale, each with its name. */
function swatches(o: { domain: string[]; range?: string[] }): { svg: string; width: number; height: number } {
  const scale = Plot.scale({ color: { type: "categorical", domain: o.domain, range: o.range } });
  let x = 8, body = "";
  for (const g of o.domain) {
    body += `<rect x="${x}" y="6" width="12" height="12" fill="${scale.apply(g)}"/>` +
      `<text x="${x + 17}" y="16" font-size="11">${escapeXml(g)}</text>`;
    x += 17 + textWidth(g, 11) + 16;
  }
  return { svg: `<svg width="${x}" height="24">${body}</svg>`, width: x, height: 24 };
}

/**
 * Renders to one standalone <svg>: a title band (Plot would wrap a titled plot in HTML), a colour legend when
 * asked (a ramp with its label and ticks), and the plot, stacked; the canvas is as wide as the widest of them.
 */
function render(
  options: Plot.PlotOptions & {
    legend?: Plot.ScaleOptions & { label?: string };
    /** Colour swatches: the groups of the default categorical scale, or groups with their own colours. */
    swatches?: string[] | { domain: string[]; range: string[] };
  },
): Figure {
  const dom = parseHTML("<!DOCTYPE html><html><body></body></html>") as unknown as { document: unknown };
  const document = dom.document as Plot.PlotOptions["document"];
  const { title, legend, swatches: groups, ...rest } = options;
  const plot = svgOf(Plot.plot({ ...rest, document, style: { background: "white" } }));
  if (!title && !legend && !groups) return { kind: "svg", data: plot.svg };
  const parts: { svg: string; width: number; height: number }[] = [];
  if (title) {
    const t = escapeXml(String(title));
    const w = textWidth(String(title), 14, true) + 16;
    parts.push({
      svg:
        `<svg width="${w}" height="28"><text x="8" y="19" font-size="14" font-weight="bold">${t}</text></svg>`,
      width: w,
      height: 28,
    });
  }
  if (legend) parts.push(colourBar(legend));
  if (groups) parts.push(swatches(Array.isArray(groups) ? { domain: groups } : groups));
  parts.push(plot);
  const width = Math.max(...parts.map((p) => p.width));
  let y = 0, body = "";
  for (const p of parts) {
    body += p.svg.replace("<svg", `<svg y="${y}"`);
    y += p.height;
  }
  return {
    kind: "svg",
    data:
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" ` +
      `font-family="system-ui, sans-serif"><rect width="100%" height="100%" fill="white"/>${body}</svg>`,
  };
}

export interface Series {
  name: string;
  x: number[];
  y: number[];
}

/** Line chart of several series (e.g. test top-1 per epoch of several runs). */
export function lineChart(
  series: Series[],
  o: { x: string; y: string; title?: string; width?: number },
): Figure {
  const rows = series.flatMap((s) => s.x.map((x, i) => ({ series: s.name, x, y: s.y[i] })))
    .filter((r) => Number.isFinite(r.y));
  const labelWidth = Math.max(0, ...series.map((s) => textWidth(s.name)));
  return render({
    title: o.title,
    width: (o.width ?? 640) + Math.max(0, labelWidth - 140),
    height: 360,
    marginRight: Math.max(40, labelWidth + 16),
    grid: true,
    x: { label: o.x },
    y: { label: o.y },
    color: { legend: false, type: "categorical" },
    marks: [
      Plot.line(rows, { x: "x", y: "y", z: "series", stroke: "series", marker: "circle-stroke" }),
      Plot.text(
        rows,
        Plot.selectLast({
          x: "x",
          y: "y",
          z: "series",
          text: "series",
          fill: "series",
          dx: 6,
          textAnchor: "start",
        }),
      ),
    ],
  });
}

export interface Bar {
  label: string;
  value: number;
  group?: string;
}

/** Horizontal bars (e.g. each ablation row's top-1), grouped by colour (ours / paper). */
export function barChart(bars: Bar[], o: { x: string; title?: string; domain?: [number, number] }): Figure {
  // Long row labels are shortened here, with an ellipsis, rather than cut by Plot's tick-label wrapping.
  const short = (t: string) => (t.length > 48 ? t.slice(0, 47).trimEnd() + "…" : t);
  const rows = bars.filter((b) => Number.isFinite(b.value)).map((b) => ({ ...b, label: short(b.label) }));
  const valueText = (d: Bar) => `${d.group ? d.group + " " : ""}${d.value.toFixed(1)}`;
  const marginLeft = Math.max(80, ...rows.map((b) => textWidth(b.label) + 16));
  const marginRight = Math.max(40, ...rows.map((b) => textWidth(valueText(b)) + 12));
  return render({
    title: o.title,
    width: marginLeft + 360 + marginRight,
    height: 40 + 22 * new Set(rows.map((b) => b.label)).size * (new Set(rows.map((b) => b.group)).size || 1),
    marginLeft,
    marginRight,
    x: { label: o.x, grid: true, domain: o.domain },
    y: { axis: null },
    fy: { label: null, axis: null },
    marks: [
      // Row labels on one line (Plot's default wraps long tick labels and shows the first line only).
      Plot.axisFy({ anchor: "left", label: null, lineWidth: Infinity }),
      Plot.barX(rows, { x: "value", y: "group", fy: "label", fill: "group", sort: { fy: null } }),
      Plot.text(rows, {
        x: "value",
        y: "group",
        fy: "label",
        text: valueText,
        textAnchor: "start",
        dx: 4,
      }),
    ],
  });
}

export interface Point {
  x: number;
  y: number;
  label: string;
  group: string;
}

/** Scatter with labels (Figure 1: throughput against top-1), x on a log scale when asked. */
export function scatterChart(
  points: Point[],
  o: { x: string; y: string; title?: string; logX?: boolean },
): Figure {
  const rows = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const groups = [...new Set(rows.map((p) => p.group))];
  // Labels are centred on their points: half the longest one must fit beside the outermost points.
  const half = Math.max(0, ...rows.map((p) => textWidth(p.label, 9))) / 2 + 8;
  return render({
    title: o.title,
    swatches: groups,
    width: 720,
    height: 420,
    marginLeft: Math.max(50, half),
    marginRight: Math.max(20, half),
    grid: true,
    x: { label: o.x, type: o.logX ? "log" : "linear", inset: 12 },
    y: { label: o.y, inset: 12 },
    color: { type: "categorical", domain: groups },
    marks: [
      Plot.line(rows, { x: "x", y: "y", stroke: "group", z: "group", sort: "x" }),
      Plot.dot(rows, { x: "x", y: "y", stroke: "group", fill: "group", r: 4 }),
      Plot.text(rows, { x: "x", y: "y", text: "label", fill: "group", dy: -10, fontSize: 9 }),
    ],
  });
}

export interface Difference {
  /** The comparison: one row each, top to bottom in order of appearance. */
  row: string;
  /** What the difference is of (e.g. "seed 0"): the dot's colour. */
  pair: string;
  value: number;
}

/** The colour of a reference value (the paper's). */
const REF = "#d62728";

/**
 * Paired differences, one row per comparison (in the order of `refs`): a dot per pair (e.g. the seeds), their mean as a black tick, a
 * reference value per row (e.g. the paper's) as a red diamond, and zero as a rule — a row whose dots all sit on
 * one side of zero went the same way in every pair.
 */
export function differenceChart(
  diffs: Difference[],
  refs: { row: string; value: number }[],
  o: { x: string; title?: string; refLabel: string },
): Figure {
  const rows = diffs.filter((d) => Number.isFinite(d.value));
  const names = [...new Set([...refs.map((r) => r.row), ...diffs.map((d) => d.row)])];
  const pairs = [...new Set(rows.map((d) => d.pair))].sort();
  const means = names.map((row) => {
    const v = rows.filter((d) => d.row === row).map((d) => d.value);
    return { row, value: v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN };
  }).filter((m) => Number.isFinite(m.value));
  const all = [0, ...rows.map((d) => d.value), ...refs.map((r) => r.value)];
  const domain: [number, number] = [Math.floor(Math.min(...all) - 1), Math.ceil(Math.max(...all) + 1)];
  const marginLeft = Math.max(80, ...names.map((n) => textWidth(n) + 16));
  const colours = {
    domain: [...pairs, "mean", o.refLabel],
    range: [
      ...(Plot.scale({ color: { type: "categorical", domain: pairs } }).range as string[]).slice(
        0,
        pairs.length,
      ),
      "black",
      REF,
    ],
  };
  return render({
    title: o.title,
    swatches: colours,
    width: marginLeft + 480 + 30,
    height: 60 + 26 * names.length,
    marginLeft,
    marginRight: 30,
    x: { label: o.x, grid: true, domain },
    y: { domain: names, label: null },
    color: { type: "categorical", ...colours },
    marks: [
      Plot.ruleX([0], { stroke: "#888" }),
      Plot.dot(rows, { x: "value", y: "row", fill: "pair", r: 4, fillOpacity: 0.85 }),
      Plot.tickX(means, { x: "value", y: "row", stroke: "black", strokeWidth: 2 }),
      Plot.dot(refs, { x: "value", y: "row", symbol: "diamond", fill: REF, r: 5 }),
    ],
  });
}

/**
 * A grid of heat maps, one cell per (row, column): `maps[r][c]` is a row-major `side × side` array. Used for
 * attention maps of the class and distillation tokens beside the image they look at.
 */
export function heatmapGrid(
  maps: { row: string; column: string; side: number; values: ArrayLike<number> }[],
  o: { title?: string; scheme?: Plot.ColorScheme; legend?: string } = {},
): Figure {
  const cells = maps.flatMap((m) =>
    Array.from({ length: m.side * m.side }, (_, i) => ({
      row: m.row,
      column: m.column,
      x: i % m.side,
      y: Math.floor(i / m.side),
      v: m.values[i],
    }))
  );
  const rowLabel = Math.max(0, ...maps.map((m) => textWidth(m.row)));
  const colLabel = Math.max(0, ...maps.map((m) => textWidth(m.column)));
  const values = cells.map((c) => c.v).filter(Number.isFinite);
  const domain: [number, number] = [Math.min(...values), Math.max(...values)];
  return render({
    title: o.title,
    legend: { type: "linear", scheme: o.scheme ?? "viridis", domain, label: o.legend ?? "value" },
    width: Math.max(120, colLabel + 12) * new Set(maps.map((m) => m.column)).size + rowLabel + 24,
    height: 120 * new Set(maps.map((m) => m.row)).size + 40,
    marginLeft: rowLabel + 16,
    padding: 0,
    x: { axis: null },
    y: { axis: null },
    fx: { label: null },
    fy: { label: null },
    color: { scheme: o.scheme ?? "viridis", domain },
    marks: [Plot.cell(cells, { x: "x", y: "y", fx: "column", fy: "row", fill: "v", inset: 0 })],
  });
}

/** Images side by side in rows of `columns`, each scaled up `scale`× (nearest), as one PNG. */
export async function imageGrid(
  images: ImageU8[],
  o: { columns: number; scale?: number; gap?: number },
): Promise<
  Figure
> {
  const s = o.scale ?? 3, gap = o.gap ?? 4;
  const w = images[0].width * s, h = images[0].height * s;
  const cols = Math.min(o.columns, images.length), rows = Math.ceil(images.length / o.columns);
  const tiles = await Promise.all(images.map(async (img, i) => ({
    input: await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(w, h, { kernel: "nearest" }).png().toBuffer(),
    left: (i % o.columns) * (w + gap),
    top: Math.floor(i / o.columns) * (h + gap),
  })));
  const png = await sharp({
    create: {
      width: cols * (w + gap) - gap,
      height: rows * (h + gap) - gap,
      channels: 3,
      background: { r: 255, g: 255, b: 255 },
    },
  }).composite(tiles).png().toBuffer();
  return { kind: "png", data: new Uint8Array(png) };
}

/**
 * A figure as a notebook output (a cell's last expression, or through {@link show}): SVG through
 * `Deno.jupyter.svg`, PNG through `Deno.jupyter.image`. Only inside a `deno jupyter` kernel (elsewhere reading
 * `Deno.jupyter` throws).
 */
export function display(f: Figure): Deno.jupyter.Displayable {
  return f.kind === "svg" ? Deno.jupyter.svg`${f.data}` : Deno.jupyter.image(f.data as Uint8Array);
}

/** Writes the figure to DIR/NAME.svg or .png and returns the path. */
export async function saveFigure(f: Figure, dir: string, name: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${name}.${f.kind}`;
  if (f.kind === "svg") await Deno.writeTextFile(path, f.data as string);
  else await Deno.writeFile(path, f.data as Uint8Array);
  return path;
}

/**
 * What {@link show} takes: a figure, text (shown as plain text), or anything Deno's Jupyter kernel displays
 * (`Deno.jupyter.md\`…\``, {@link display}, a table's `tableDisplay`: objects with a
 * `Symbol.for("Jupyter.display")` method).
 */
export type Showable = Figure | string | Deno.jupyter.Displayable;

/** Deno's Jupyter API inside a `deno jupyter` kernel, else null (reading `Deno.jupyter` throws there). */
function kernel(): typeof Deno.jupyter | null {
  try {
    return Deno.jupyter;
  } catch {
    return null;
  }
}

function isFigure(x: Showable): x is Figure {
  return typeof x === "object" && "kind" in x && "data" in x;
}

/**
 * Shows `x` as a notebook output now, wherever it is in the cell; outside a notebook kernel it prints its text
 * (plain, else markdown) or says what kind of figure it would be.
 */
export async function show(x: Showable): Promise<void> {
  const jupyter = kernel();
  if (!jupyter) {
    if (typeof x === "string") console.log(x);
    else if (isFigure(x)) console.log(`(${x.kind} figure)`);
    else {
      const bundle = await x[Symbol.for("Jupyter.display") as typeof Deno.jupyter.$display]();
      const text = bundle["text/plain"] ?? bundle["text/markdown"];
      console.log(text ?? `(${Object.keys(bundle).join(", ")} output)`);
    }
    return;
  }
  if (typeof x === "string") await jupyter.display({ "text/plain": x }, { raw: true });
  else await jupyter.display(isFigure(x) ? display(x) : x);
  // Let the kernel send the output before the cell reports idle: without this pause an output at the very
  // end of a cell is sometimes dropped by headless runs (nbconvert moves on to the next cell).
  await new Promise((r) => setTimeout(r, 150));
}

/** A confusion matrix (rows: true class, columns: predicted), counts written in the cells, with a colour bar. */
export function confusionFigure(counts: number[][], classes: string[], o: { title?: string } = {}): Figure {
  const cells = counts.flatMap((row, t) => row.map((n, p) => ({ t: classes[t], p: classes[p], n })));
  const labelW = Math.max(...classes.map((c) => textWidth(c)));
  const max = Math.max(...cells.map((c) => c.n));
  return render({
    title: o.title,
    legend: { type: "linear", scheme: "blues", domain: [0, max], label: "images" },
    width: labelW + 40 + 44 * classes.length,
    height: labelW + 60 + 30 * classes.length,
    marginLeft: labelW + 30,
    marginBottom: labelW + 30,
    x: { label: "predicted →", domain: classes, tickRotate: -45 },
    y: { label: "↑ true", domain: classes },
    color: { scheme: "blues", domain: [0, max] },
    marks: [
      Plot.cell(cells, { x: "p", y: "t", fill: "n", inset: 0.5 }),
      Plot.text(cells, {
        x: "p",
        y: "t",
        text: (d: { n: number }) => String(d.n),
        fill: (d: { n: number }) => (d.n > max / 2 ? "white" : "black"),
        fontSize: 9,
      }),
    ],
  });
}
