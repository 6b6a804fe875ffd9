/**
 * Looking inside finished runs: the trained model back from a run folder (its last or best weights, or the
 * EMA of its weights), accuracy under each inference head of a DeiT⚗, and test batches for the distillation
 * analyses of lib/distill/analysis.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { loadStateDict } from "../io/checkpoint.ts";
import type { Dataset, ImageU8 } from "../data/dataset.ts";
import { openDataset } from "../data/datasets/mod.ts";
import { readCheckpointFile } from "../io/checkpoint.ts";
import { parseTrainingCheckpoint } from "../io/train_state.ts";
import { type AnyModel, buildRegNet, buildVit, getEntry } from "../models/registry.ts";
import { evalImage, type EvalMetrics, evaluateDataset, limitDataset } from "../train/evaluate.ts";
import { VisionTransformer } from "../vit/model.ts";
import { readRun, requireRun, type RunRecord } from "./runs.ts";
import type { ResultTable } from "./result_table.ts";
import { agreement, attentionRollout, tokenSimilarity } from "../distill/analysis.ts";
import type { RegNet } from "../regnet/model.ts";
import { repoPath } from "../base/paths.ts";

export interface LoadRunOptions {
  /**
   * "last" (the end of training, what the tables report), "best" (best evaluated epoch) or "matched" (a claims
   * teacher's accuracy-matched weights, the ones its students learnt from). Default last.
   */
  which?: "last" | "best" | "matched";
  /** Load the exponential moving average of the weights instead (runs trained with `ema: true`). */
  ema?: boolean;
}

/** The model of a run, built from its config.json and loaded from its checkpoint. Dispose it when done. */
export async function loadRunModel(
  dir: string,
  opts: LoadRunOptions = {},
): Promise<{ run: RunRecord; model: AnyModel }> {
  const run = await requireRun(dir, "train it first (deno task sweep, or deno task train --out DIR)");
  const path = `${repoPath(dir)}/checkpoint-${opts.which ?? "last"}.safetensors`;
  const ckpt = parseTrainingCheckpoint(await readCheckpointFile(path));
  const live = ckpt.weights;
  const c = run.config;
  const overrides = { numClasses: run.derived.num_classes, imgSize: run.derived.img_size };
  const model: AnyModel = getEntry(c.model).family === "vit"
    ? buildVit(c.model, overrides, c.seed)
    : buildRegNet(c.model, overrides, c.seed);
  let sd = live;
  if (opts.ema) {
    // The EMA is stored flat in the model's internal layout (as the trainer keeps it): back to timm's
    // layout and shape, the live tensor's.
    const shapes = model.torchShapes();
    sd = new Map();
    for (const [name, data] of Object.entries(ckpt.ema)) {
      const shape = shapes.get(name) ?? live.get(name)?.shape ?? [data.length];
      sd.set(name, { dtype: "F32", shape: [...shape], data: model.toTorch(name, shape, data) });
    }
    if (sd.size === 0) {
      model.dispose();
      throw new Error(`${path} holds no EMA weights (was the run trained with ema?)`);
    }
    // Buffers (BatchNorm statistics) are not averaged by EMA: take them from the live weights.
    for (const [k, v] of live) if (!sd.has(k)) sd.set(k, v);
  }
  loadStateDict(model, sd, { source: path + (opts.ema ? " (EMA)" : "") });
  return { run, model };
}

/** The test split of a run's dataset (its first `limit` images when limit > 0). */
export async function runTestSet(run: RunRecord, limit = 0): Promise<Dataset> {
  const c = run.config;
  const d = await openDataset(c.dataset, c.val_split, c.data_dir || undefined);
  return limit > 0 && limit < d.length ? limitDataset(d, Int32Array.from({ length: limit }, (_, i) => i)) : d;
}

/** Logits of one head: "cls", "dist" or "both" ((cls + dist)/2, DeiT's rule); convnets have one output. */
export function headLogits(model: AnyModel, x: tf.Tensor4D, head: "cls" | "dist" | "both"): tf.Tensor2D {
  if (!(model instanceof VisionTransformer)) return model.predict(x) as tf.Tensor2D;
  const out = model.forward(x);
  if (head === "cls" || !out.dist) return out.cls;
  if (head === "dist") return out.dist;
  return tf.div(tf.add(out.cls, out.dist), 2) as tf.Tensor2D;
}

/** Test accuracy of a model under one head, DeiT's eval transform, batches of 128. */
export function evaluateHead(
  model: AnyModel,
  data: Dataset,
  imgSize: number,
  head: "cls" | "dist" | "both" = "cls",
): Promise<EvalMetrics> {
  return evaluateDataset(data, imgSize, 128, async (x, shape) => {
    const logits = tf.tidy(() => headLogits(model, tf.tensor4d(x, shape), head));
    try {
      return (await logits.data()) as Float32Array;
    } finally {
      logits.dispose();
    }
  });
}

/** The first `n` images of a dataset through the eval transform, as one NHWC batch, with their labels. */
export async function evalBatch(
  data: Dataset,
  imgSize: number,
  n: number,
): Promise<{ x: tf.Tensor4D; labels: number[] }> {
  n = Math.min(n, data.length);
  const per = imgSize * imgSize * 3;
  const buf = new Float32Array(n * per);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = await data.get(i);
    labels.push(s.label);
    await evalImage(s.image, imgSize, buf.subarray(i * per, (i + 1) * per));
  }
  return { x: tf.tensor4d(buf, [n, imgSize, imgSize, 3]), labels };
}

// ------------------------------------------------------------------------------------ distillation analyses

export interface DistillAnalyses {
  /** Which runs were analysed (DistillRuns.source). */
  source: string;
  images: number;
  /** cos(class token, distillation token): input embeddings, then after each block. */
  similarity: { input: number; blocks: number[]; output: number };
  /** Agreement (%) of each student with the convnet teacher: class head, distillation head, both. */
  agreement: { student: string; cls: number; dist: number | null; both: number | null }[];
  /** Attention rollout of both tokens for the first four test images, and those images. */
  attention: { grid: number; cls: Float32Array[]; dist: Float32Array[] | null; images: ImageU8[] };
}

/** The runs the distillation analyses read (folders under the runs root). */
export interface DistillRuns {
  source: string;
  /** The convnet teacher, and the checkpoint of it that its students learnt from. */
  teacher: string;
  teacherCheckpoint: "last" | "matched";
  /** The DeiT⚗ student (token similarity, attention). */
  token: string;
  /** The students of the agreement table: [name, folder]. */
  students: [string, string][];
}

/** The converged claims students of seed 0 when they are finished, else the short distill grid's. */
export const DISTILL_RUNS: DistillRuns[] = [
  {
    source: "seed 0 of the claims runs: claims/deit-s0, claims-distill/{soft,hard,token}-s0, taught by " +
      "claims/teacher-regnet's accuracy-matched weights",
    teacher: "claims/teacher-regnet",
    teacherCheckpoint: "matched",
    token: "claims-distill/token-s0",
    students: [
      ["no distillation", "claims/deit-s0"],
      ["soft", "claims-distill/soft-s0"],
      ["hard", "claims-distill/hard-s0"],
      ["DeiT⚗", "claims-distill/token-s0"],
    ],
  },
  {
    source: "the short distill grid (12 epochs): recipe/deit, distill/{soft,hard,token}, taught by " +
      "distill/teacher-regnet",
    teacher: "distill/teacher-regnet",
    teacherCheckpoint: "last",
    token: "distill/token",
    students: [
      ["no distillation", "recipe/deit"],
      ["soft", "distill/soft"],
      ["hard", "distill/hard"],
      ["DeiT⚗", "distill/token"],
    ],
  },
];

/**
 * Notebook 03's analyses of a DeiT⚗ student on the first `n` test images: token similarity per block, agreement
 * of every student with the convnet teacher, attention maps — from the first of `sets` whose runs are all
 * finished (DISTILL_RUNS: the claims students, else the short grid's). Null when none is.
 */
export async function distillAnalyses(
  root: string,
  n: number,
  sets: DistillRuns[] = DISTILL_RUNS,
): Promise<DistillAnalyses | null> {
  const finished = async (r: DistillRuns) => {
    for (const d of [r.teacher, ...r.students.map((s) => s[1])]) {
      if (!(await readRun(`${root}/${d}`))?.done) return false;
    }
    return true;
  };
  let runs: DistillRuns | undefined;
  for (const r of sets) {
    if (await finished(r)) {
      runs = r;
      break;
    }
  }
  if (!runs) return null;
  const { run, model: student } = await loadRunModel(`${root}/${runs.token}`);
  const { model: teacher } = await loadRunModel(`${root}/${runs.teacher}`, { which: runs.teacherCheckpoint });
  const test = await runTestSet(run);
  const size = run.derived.img_size;
  const batch = await evalBatch(test, size, n);
  const four = await evalBatch(test, size, 4);
  try {
    const vit = student as VisionTransformer;
    const similarity = await tokenSimilarity(vit, batch.x);
    const agreementRows: DistillAnalyses["agreement"] = [];
    for (const [name, dir] of runs.students) {
      const { model } = await loadRunModel(`${root}/${dir}`);
      try {
        const a = await agreement(model as VisionTransformer, teacher as RegNet, batch.x);
        const pct = (v: number | null) => (v === null ? null : 100 * v);
        agreementRows.push({ student: name, cls: 100 * a.cls, dist: pct(a.dist), both: pct(a.both) });
      } finally {
        model.dispose();
      }
    }
    const maps = await attentionRollout(vit, four.x);
    const images: ImageU8[] = [];
    for (let i = 0; i < 4; i++) images.push((await test.get(i)).image);
    return {
      source: runs.source,
      images: batch.labels.length,
      similarity,
      agreement: agreementRows,
      attention: { grid: maps.grid, cls: maps.cls, dist: maps.dist, images },
    };
  } finally {
    tf.dispose([batch.x, four.x]);
    student.dispose();
    teacher.dispose();
  }
}

/**
 * The paper's agreement with the convnet teacher (%): 100 × (1 − the disagreement rate of its Table 4, DeiT-B on
 * ImageNet against its RegNetY-16GF teacher). Table 4 has no soft or hard class-token student.
 */
export const PAPER_AGREEMENT: Record<string, { cls: number; dist?: number; both?: number }> = {
  "no distillation": { cls: 86.7 },
  "DeiT⚗": { cls: 88.8, dist: 90.0, both: 89.8 },
};

/** The agreement rows of {@link distillAnalyses} as a table, each head beside the paper's. */
export function agreementTable(an: DistillAnalyses): ResultTable {
  return {
    name: "agreement",
    title: `Agreement with the convnet teacher (${an.images} test images, %)`,
    intro: [
      "Paper: DeiT-B on ImageNet with its RegNetY-16GF teacher, 100 × (1 − Table 4's disagreement); it has no " +
      "soft or hard class-token student.",
    ],
    columns: [
      { key: "student", title: "student" },
      { key: "cls", title: "class head", digits: 1 },
      { key: "paper_cls", title: "paper", digits: 1 },
      { key: "dist", title: "distillation head", digits: 1 },
      { key: "paper_dist", title: "paper", digits: 1 },
      { key: "both", title: "class + distillation", digits: 1 },
      { key: "paper_both", title: "paper", digits: 1 },
    ],
    rows: an.agreement.map((a) => {
      const p = PAPER_AGREEMENT[a.student];
      return { ...a, paper_cls: p?.cls ?? null, paper_dist: p?.dist ?? null, paper_both: p?.both ?? null };
    }),
    notes: [],
  };
}

/** Confusion counts `[true][predicted]` of a model on a dataset through one head (DeiT's eval transform). */
export async function confusionMatrix(
  model: AnyModel,
  data: Dataset,
  imgSize: number,
  head: "cls" | "dist" | "both" = "both",
): Promise<number[][]> {
  const C = data.classes.length;
  const m = Array.from({ length: C }, () => new Array(C).fill(0));
  for (let start = 0; start < data.length; start += 128) {
    const n = Math.min(128, data.length - start);
    const idx = Int32Array.from({ length: n }, (_, i) => start + i);
    const { x, labels } = await evalBatch(limitDataset(data, idx), imgSize, n);
    const pred = tf.tidy(() => tf.argMax(headLogits(model, x, head), 1));
    const p = await pred.data();
    tf.dispose([x, pred]);
    labels.forEach((y, i) => m[y][p[i]]++);
  }
  return m;
}
