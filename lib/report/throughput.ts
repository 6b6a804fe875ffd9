/**
 * Table 1/5-style throughput measured here (the paper's method, lib/train/bench.ts: forward only, float32, warm-up,
 * mean time of a batch, images/s = batch / time) beside the paper's V100 figures, and the Figure-1-style
 * picture of throughput against top-1.
 */
import { benchmark, type BenchResult } from "../train/bench.ts";
import { initBackend } from "../accel/backend.ts";
import { machineLine } from "../base/machine.ts";
import { getEntry } from "../models/registry.ts";
import { repoPath } from "../base/paths.ts";
import { type Figure, scatterChart } from "./plots.ts";
import type { ResultTable } from "./result_table.ts";

export interface ThroughputPlan {
  model: string;
  batchSize: number;
}

/**
 * DeiT-Ti/S/B at 224 and B at 384. The paper times the largest batch that fits a 16 GB V100 over 30 runs; a
 * 2-core CPU needs minutes per DeiT-B batch, so the full preset times smaller batches over 3 runs (said in
 * the table), and the smoke preset only DeiT-Ti at batch 2 once.
 */
export function throughputPlan(
  preset: "smoke" | "full",
): { plan: ThroughputPlan[]; runs: number; warmup: number } {
  if (preset === "smoke") {
    return { plan: [{ model: "deit_tiny_patch16_224", batchSize: 2 }], runs: 1, warmup: 0 };
  }
  return {
    plan: [
      { model: "deit_tiny_patch16_224", batchSize: 32 },
      { model: "deit_small_patch16_224", batchSize: 16 },
      { model: "deit_base_patch16_224", batchSize: 8 },
      { model: "deit_base_patch16_384", batchSize: 4 },
    ],
    runs: 3,
    warmup: 1,
  };
}

/** Measures the plan on the active backend with `workers` engines; progress goes to `log`. */
export async function measureThroughput(
  preset: "smoke" | "full",
  opts: { workers?: number; log?: (s: string) => void } = {},
): Promise<BenchResult[]> {
  const { plan, runs, warmup } = throughputPlan(preset);
  const out: BenchResult[] = [];
  for (const p of plan) {
    const r = await benchmark({
      model: p.model,
      mode: "infer",
      batchSize: p.batchSize,
      runs,
      warmup,
      workers: opts.workers ?? navigator.hardwareConcurrency,
    });
    opts.log?.(`${p.model}: ${r.images_per_s.toFixed(2)} images/s (batch ${p.batchSize}, ${runs} runs)`);
    out.push(r);
  }
  return out;
}

export function throughputTable(results: BenchResult[], machine: string, date: string): ResultTable {
  return {
    name: "throughput",
    title: "Throughput (Table 1 / Table 5 method) measured here",
    intro: [
      `Ours: ${machine}, ${date}; backend ${results[0]?.backend ?? "—"} × ${
        results[0]?.workers ?? "—"
      } engines${results[0]?.matmul ? ` (matrix products: ${results[0].matmul})` : ""}; ` +
      "forward only, float32, random weights and inputs, warm-up then the mean time of a batch. Paper: one " +
      "16 GB V100, the largest batch that fits, 30 runs. Top-1 is the paper's (ImageNet cannot be evaluated " +
      "here).",
    ],
    columns: [
      { key: "model", title: "model" },
      { key: "img", title: "img", digits: 0 },
      { key: "batch", title: "batch", digits: 0 },
      { key: "runs", title: "runs", digits: 0 },
      { key: "ours", title: "ours images/s" },
      { key: "paper", title: "paper V100 images/s", digits: 1 },
      { key: "paper_top1", title: "paper top-1", digits: 1 },
    ],
    rows: results.map((r) => ({
      model: r.model,
      img: r.img_size,
      batch: r.batch_size,
      runs: r.runs,
      ours: r.images_per_s,
      paper: getEntry(r.model).paper?.v100ImagesPerS ?? null,
      paper_top1: getEntry(r.model).paper?.top1 ?? null,
    })),
    notes: [],
  };
}

/**
 * Figure 1's axes (throughput, log scale, against top-1): the paper's DeiT points (V100), and ours — the
 * throughput measured here with the paper's top-1, since accuracy on ImageNet is not measured here.
 */
export function figure1(results: BenchResult[]): Figure {
  const names = [
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "deit_base_patch16_384",
    "deit_tiny_distilled_patch16_224",
    "deit_small_distilled_patch16_224",
    "deit_base_distilled_patch16_224",
    "deit_base_distilled_patch16_384",
  ];
  const short = (n: string) =>
    n.replace("deit_", "").replace("_patch16", "").replace("tiny", "Ti").replace("small", "S").replace(
      "base",
      "B",
    )
      .replace("_distilled", "⚗");
  const points = names.map((n) => {
    const p = getEntry(n).paper!;
    return {
      x: p.v100ImagesPerS ?? NaN,
      y: p.top1,
      label: `${short(n)} V100`,
      group: n.includes("distilled") ? "paper DeiT⚗ (V100)" : "paper DeiT (V100)",
    };
  });
  for (const r of results) {
    points.push({
      x: r.images_per_s,
      y: getEntry(r.model).paper?.top1 ?? NaN,
      label: `${short(r.model)} here`,
      group: `here (${r.backend}, 2 cores; paper's top-1)`,
    });
  }
  return scatterChart(points, {
    x: "images/s (log scale)",
    y: "ImageNet top-1 (%)",
    logX: true,
    title: "Throughput vs accuracy (Figure 1's axes)",
  });
}

export interface ThroughputRecord {
  results: BenchResult[];
  machine: string;
  date: string;
}

/** A measurement `deno task reproduce` saved (its throughput_measured.json), or null when there is none. */
export async function readThroughputRecord(path: string): Promise<ThroughputRecord | null> {
  try {
    const r = JSON.parse(await Deno.readTextFile(path));
    return Array.isArray(r?.results) ? r : null;
  } catch {
    return null;
  }
}

/**
 * What notebook 05 shows: for the full preset the figures `deno task reproduce` saved in
 * results/throughput_measured.json (empty when it has not run yet); for the smoke preset a measurement made now.
 */
export async function throughputForPreset(preset: "smoke" | "full"): Promise<ThroughputRecord> {
  if (preset === "smoke") {
    await initBackend("auto");
    return {
      results: await measureThroughput("smoke", { workers: 1 }),
      machine: await machineLine(),
      date: new Date().toISOString().slice(0, 10),
    };
  }
  return await readThroughputRecord(repoPath("results/throughput_measured.json")) ??
    { results: [], machine: "", date: "" };
}
