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

/** Renders to one standalone <svg> (the title drawn inside it: Plot would wrap a titled plot in HTML). */
function render(options: Plot.PlotOptions): Figure {
  const dom = parseHTML("<!DOCTYPE html><html><body></body></html>") as unknown as { document: unknown };
  const document = dom.document as Plot.PlotOptions["document"];
  const { title, ...rest } = options;
  const node = Plot.plot({ ...rest, document, style: { background: "white" } });
  let svg = (node as unknown as { outerHTML: string }).outerHTML;
  svg = svg.slice(svg.indexOf("<svg"), svg.lastIndexOf("</svg>") + 6);
  if (!svg.includes('xmlns="http://www.w3.org/2000/svg"')) {
    svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  }
  if (title) {
    // Nest the plot under a title band: a standalone SVG that any viewer (and sharp) renders.
    const w = Number(svg.match(/width="([\d.]+)"/)?.[1] ?? 640);
    const h = Number(svg.match(/height="([\d.]+)"/)?.[1] ?? 400);
    svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h + 28}" viewBox="0 0 ${w} ${
        h + 28
      }" ` +
      `font-family="system-ui, sans-serif"><rect width="100%" height="100%" fill="white"/>` +
      `<text x="8" y="19" font-size="14" font-weight="bold">${escapeXml(String(title))}</text>` +
      svg.replace("<svg", '<svg y="28"') + "</svg>";
  }
  return { kind: "svg", data: svg };
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
  return render({
    title: o.title,
    width: o.width ?? 640,
    height: 360,
    marginRight: 150,
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
  const rows = bars.filter((b) => Number.isFinite(b.value));
  return render({
    title: o.title,
    width: 720,
    height: 40 + 22 * new Set(rows.map((b) => b.label)).size * (new Set(rows.map((b) => b.group)).size || 1),
    marginLeft: 280,
    marginRight: 70,
    x: { label: o.x, grid: true, domain: o.domain },
    y: { axis: null },
    fy: { label: null, axis: "left" },
    marks: [
      Plot.barX(rows, { x: "value", y: "group", fy: "label", fill: "group", sort: { fy: null } }),
      Plot.text(rows, {
        x: "value",
        y: "group",
        fy: "label",
        text: (d: Bar) => `${d.group ? d.group + " " : ""}${d.value.toFixed(1)}`,
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
  return render({
    title: o.title,
    width: 720,
    height: 420,
    grid: true,
    x: { label: o.x, type: o.logX ? "log" : "linear" },
    y: { label: o.y },
    marks: [
      Plot.line(rows, { x: "x", y: "y", stroke: "group", z: "group", sort: "x" }),
      Plot.dot(rows, { x: "x", y: "y", stroke: "group", fill: "group", r: 4 }),
      Plot.text(rows, { x: "x", y: "y", text: "label", fill: "group", dy: -10, fontSize: 9 }),
    ],
  });
}

/**
 * A grid of heat maps, one cell per (row, column): `maps[r][c]` is a row-major `side × side` array. Used for
 * attention maps of the class and distillation tokens beside the image they look at.
 */
export function heatmapGrid(
  maps: { row: string; column: string; side: number; values: ArrayLike<number> }[],
  o: { title?: string; scheme?: Plot.ColorScheme } = {},
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
  return render({
    title: o.title,
    width: 120 * new Set(maps.map((m) => m.column)).size + 80,
    height: 120 * new Set(maps.map((m) => m.row)).size + 40,
    padding: 0,
    x: { axis: null },
    y: { axis: null },
    fx: { label: null },
    fy: { label: null },
    color: { scheme: o.scheme ?? "viridis" },
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

/** A figure as a MIME bundle (`Deno.jupyter.display(bundle, { raw: true })`). */
export function figureBundle(f: Figure): Record<string, string> {
  return f.kind === "svg"
    ? { "image/svg+xml": f.data as string }
    : { "image/png": btoa(Array.from(f.data as Uint8Array, (b) => String.fromCharCode(b)).join("")) };
}

/** A figure as a notebook cell's output (the cell's last expression). */
export function display(f: Figure): { [k: symbol]: () => Record<string, string> } {
  const bundle = figureBundle(f);
  return { [Symbol.for("Jupyter.display")]: () => bundle };
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
 * Shows a figure (or a MIME bundle) as a notebook output now, wherever it is in the cell; outside a notebook
 * kernel it prints the bundle's text or says where a figure would be.
 */
export async function show(x: Figure | Record<string, string>): Promise<void> {
  const bundle = "kind" in x && "data" in x ? figureBundle(x as Figure) : x as Record<string, string>;
  const jupyter = (Deno as unknown as {
    jupyter?: { display(b: Record<string, string>, o: { raw: boolean }): Promise<void> };
  }).jupyter;
  if (jupyter) {
    await jupyter.display(bundle, { raw: true });
    // Let the kernel send the output before the cell reports idle: without this pause an output at the very
    // end of a cell is sometimes dropped by headless runs (nbconvert moves on to the next cell).
    await new Promise((r) => setTimeout(r, 150));
  } else console.log(bundle["text/plain"] ?? `(${Object.keys(bundle).join(", ")} output)`);
}
