/**
 * Table 1/5-style throughput measured here (the paper's method, lib/train/bench.ts: forward only, float32, warm-up,
 * mean time of a batch, images/s = batch / time) beside the paper's V100 figures, and the Figure-1-style
 * picture of throughput against top-1.
 */
import { benchmark, type BenchResult } from "../train/bench.ts";
import { initBackend } from "../accel/backend.ts";
import { machineLine } from "../base/machine.ts";
import { getEntry, modelConfig } from "../models/registry.ts";
import { largestFittingBatch } from "../train/memory.ts";
import { repoPath } from "../base/paths.ts";
import { type Figure, scatterChart } from "./plots.ts";
import type { ResultTable } from "./result_table.ts";

/**
 * The paper's method (Table 1 note): the largest batch that fits, 30 runs. A V100 needs its largest batch to
 * be saturated; a CPU is saturated long before its memory is full, and larger batches there only cost time.
 * So the batch is searched: doubling from `startBatch` (a few runs each) until a doubling gains less than
 * `minGain`, or the next batch would not fit (lib/train/memory.ts: the training step's estimate, a safe bound
 * for a forward pass); then the best batch is timed over `runs` runs.
 */
export interface ThroughputPlan {
  models: string[];
  startBatch: number;
  /** Runs per batch tried during the search. */
  searchRuns: number;
  /** Relative gain in images/s that a doubling must bring for the search to go on. */
  minGain: number;
  runs: number;
  warmup: number;
  /** No batch above this (the smoke preset's single point). */
  maxBatch?: number;
}

/** DeiT-Ti/S/B at 224 and B at 384 (Table 1); the smoke preset: DeiT-Ti at batch 2, once. */
export function throughputPlan(preset: "smoke" | "full"): ThroughputPlan {
  if (preset === "smoke") {
    return {
      models: ["deit_tiny_patch16_224"],
      startBatch: 2,
      searchRuns: 1,
      minGain: Infinity,
      runs: 1,
      warmup: 0,
    };
  }
  return {
    models: [
      "deit_tiny_patch16_224",
      "deit_small_patch16_224",
      "deit_base_patch16_224",
      "deit_base_patch16_384",
    ],
    startBatch: 4,
    searchRuns: 3,
    minGain: 0.03,
    runs: 30,
    warmup: 1,
  };
}

/** One model's measurement: the search (batch → images/s) and the final timing at the chosen batch. */
export interface ThroughputResult extends BenchResult {
  search?: { batch: number; images_per_s: number }[];
}

/**
 * The search alone: doubling from `plan.startBatch` up to `maxBatch`, until a doubling gains less than
 * `plan.minGain` over the best so far; `measure(batch)` gives images/s. Returns the best batch and the points.
 */
export async function searchBatch(
  plan: Pick<ThroughputPlan, "startBatch" | "minGain">,
  maxBatch: number,
  measure: (batch: number) => Promise<number>,
): Promise<{ batch: number; search: { batch: number; images_per_s: number }[] }> {
  const search: { batch: number; images_per_s: number }[] = [];
  let best = { batch: plan.startBatch, images_per_s: 0 };
  for (let b = plan.startBatch; b <= Math.max(maxBatch, plan.startBatch); b *= 2) {
    const ips = await measure(b);
    search.push({ batch: b, images_per_s: ips });
    const gained = search.length > 1 && ips >= best.images_per_s * (1 + plan.minGain);
    if (ips > best.images_per_s) best = { batch: b, images_per_s: ips };
    if (search.length > 1 && !gained) break;
  }
  return { batch: best.batch, search };
}

/** Measures the plan on the active backend with `workers` engines; progress goes to `log`. */
export async function measureThroughput(
  preset: "smoke" | "full",
  opts: { workers?: number; log?: (s: string) => void } = {},
): Promise<ThroughputResult[]> {
  const plan = throughputPlan(preset);
  const workers = opts.workers ?? navigator.hardwareConcurrency;
  const out: ThroughputResult[] = [];
  for (const model of plan.models) {
    const run = (batchSize: number, runs: number) =>
      benchmark({ model, mode: "infer", batchSize, runs, warmup: plan.warmup, workers });
    const fits = Math.min(plan.maxBatch ?? Infinity, largestFittingBatch(modelConfig(model)) * workers);
    const { batch, search } = await searchBatch(plan, fits, async (b) => {
      const r = await run(b, plan.searchRuns);
      opts.log?.(`${model}: batch ${b}: ${r.images_per_s.toFixed(2)} images/s (${plan.searchRuns} runs)`);
      return r.images_per_s;
    });
    const r = await run(batch, plan.runs);
    opts.log?.(`${model}: ${r.images_per_s.toFixed(2)} images/s (batch ${batch}, ${plan.runs} runs)`);
    out.push({ ...r, search });
  }
  return out;
}

export function throughputTable(results: ThroughputResult[], machine: string, date: string): ResultTable {
  return {
    name: "throughput",
    title: "Throughput (Table 1 / Table 5 method) measured here",
    intro: [
      `Ours: ${machine}, ${date}; backend ${results[0]?.backend ?? "—"} × ${
        results[0]?.workers ?? "—"
      } engines${results[0]?.matmul ? ` (matrix products: ${results[0].matmul})` : ""}; ` +
      "forward only, float32, random weights and inputs, warm-up then the mean time of a batch. Paper: one " +
      "16 GB V100, the largest batch that fits, 30 runs. Here: the batch at which throughput stops rising " +
      "(doubling from 4 until a doubling gains under 3%, within what fits the wasm heap), then 30 runs — a " +
      "CPU is saturated long before its memory is full. Top-1 is the paper's (ImageNet cannot be evaluated " +
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
    notes: results.filter((r) => r.search?.length).map((r) => {
      const last = r.search![r.search!.length - 1].batch;
      const fits = largestFittingBatch(modelConfig(r.model)) * r.workers;
      return `${r.model}, the batch search (images/s): ` +
        r.search!.map((p) => `${p.batch} → ${p.images_per_s.toFixed(2)}`).join(", ") +
        (last * 2 > fits
          ? ` (stopped by memory: a training step of ${
            last * 2
          } images would not fit ${r.workers} wasm heaps — ` +
            "the bound is conservative for a forward pass)"
          : "");
    }),
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
  // deit_base_distilled_patch16_384 → "B-384 dist.", deit_tiny_patch16_224 → "Ti"
  const short = (n: string) => {
    const size = n.includes("tiny") ? "Ti" : n.includes("small") ? "S" : "B";
    return `${size}${n.endsWith("384") ? "-384" : ""}${n.includes("distilled") ? " dist." : ""}`;
  };
  const points = names.map((n) => {
    const p = getEntry(n).paper!;
    return {
      x: p.v100ImagesPerS ?? NaN,
      y: p.top1,
      label: `${short(n)} V100`,
      group: n.includes("distilled") ? "paper, DeiT distilled (V100)" : "paper, DeiT (V100)",
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
