/**
 * lib/'s folders are its layers (lib/README.md): a file imports only its own folder and the layers below it,
 * and no file sits loose in lib/.
 */
import { assert, assertEquals } from "@std/assert";
import { fromFileUrl, toFileUrl } from "../lib/base/paths.ts";

/** Bottom to top; a folder may import its own files and any folder to its left. */
const LAYERS = [
  "base",
  "io",
  "accel",
  "vit",
  "regnet",
  "models",
  "data",
  "distill",
  "train",
  "sweep",
  "report",
];
const LIB = fromFileUrl(new URL("../lib/", import.meta.url));

/** Every module a source file names: static and dynamic imports, re-exports, and `new URL("…ts", import.meta.url)`. */
export function importsOf(src: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /new URL\(\s*["']([^"']+\.ts)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) for (const m of src.matchAll(re)) specs.push(m[1]);
  return specs;
}

/** The layer-rule breaks of one file, `lib/<from>` importing `specs`. */
export function breaches(from: string, specs: string[]): string[] {
  const layer = from.split("/")[0];
  const rank = LAYERS.indexOf(layer);
  const out: string[] = [];
  if (rank < 0) return [`lib/${from}: not in a layer folder (${LAYERS.join(", ")})`];
  for (const spec of specs) {
    if (!spec.startsWith(".")) continue; // packages
    const target = fromFileUrl(new URL(spec, toFileUrl(`/lib/${from}`))).replace(/^\/lib\//, "");
    if (target.startsWith("/")) {
      out.push(`lib/${from} imports ${spec}, outside lib/`);
      continue;
    }
    const to = target.split("/")[0];
    if (to === layer) continue;
    const toRank = LAYERS.indexOf(to);
    if (toRank < 0 || toRank > rank) {
      out.push(`lib/${from} (${layer}) imports lib/${target} (${to}), a layer above it`);
    }
  }
  return out;
}

async function* libFiles(dir = LIB, rel = ""): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) yield* libFiles(`${dir}${e.name}/`, `${rel}${e.name}/`);
    else if (e.name.endsWith(".ts")) yield `${rel}${e.name}`;
  }
}

Deno.test("lib/: every import goes to the same layer or one below it; no loose files", async () => {
  const problems: string[] = [];
  let files = 0;
  for await (const f of libFiles()) {
    files++;
    problems.push(...breaches(f, importsOf(await Deno.readTextFile(LIB + f))));
  }
  assert(files > 50, `found only ${files} files under lib/`);
  assertEquals(problems, []);
});

Deno.test("the layer check catches an import upwards, a loose file and a path out of lib/", () => {
  assertEquals(breaches("vit/model.ts", importsOf(`import { x } from "../accel/ops.ts";`)), []);
  assertEquals(breaches("vit/model.ts", importsOf(`import type { T } from "./config.ts";`)), []);
  assertEquals(breaches("distill/modes.ts", importsOf(`import type { LossFn } from "../train/step.ts";`)), [
    "lib/distill/modes.ts (distill) imports lib/train/step.ts (train), a layer above it",
  ]);
  assertEquals(
    breaches(
      "data/train_loader.ts",
      importsOf(`const w = new Worker(new URL("../train/x.ts", import.meta.url));`),
    )
      .length,
    1,
  );
  assertEquals(breaches("io/pth.ts", importsOf(`const m = await import("../report/plots.ts");`)).length, 1);
  assertEquals(breaches("bench.ts", []), ["lib/bench.ts: not in a layer folder (" + LAYERS.join(", ") + ")"]);
  assertEquals(breaches("io/pth.ts", importsOf(`export * from "../../scripts/train.ts";`)), [
    "lib/io/pth.ts imports ../../scripts/train.ts, outside lib/",
  ]);
});
