/**
 * Looking inside finished runs: the trained model back from a run folder (its last or best weights, or the
 * EMA of its weights), accuracy under each inference head of a DeiT⚗, and test batches for the distillation
 * analyses of lib/distill/analysis.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { loadStateDict } from "../checkpoint.ts";
import type { Dataset } from "../data/dataset.ts";
import { openDataset } from "../data/datasets.ts";
import { readCheckpointFile } from "../io/checkpoint.ts";
import { type AnyModel, buildRegNet, buildVit, getEntry } from "../registry.ts";
import { scoped } from "../scoped.ts";
import { evalImage, type EvalMetrics, evaluateDataset, limitDataset } from "../train/evaluate.ts";
import { VisionTransformer } from "../vit/model.ts";
import { requireRun, type RunRecord } from "./runs.ts";
import { repoPath } from "../sweep/grid.ts";

export interface LoadRunOptions {
  /** "last" (the end of training, what the tables report) or "best" (best evaluated epoch). Default last. */
  which?: "last" | "best";
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
  const file = await readCheckpointFile(path);
  const prefix = "_train.ema.";
  const live = new Map([...file.stateDict].filter(([k]) => !k.startsWith("_train.")));
  // The EMA is stored flat (one vector per parameter): it takes the live tensor's shape.
  const sd = opts.ema
    ? new Map(
      [...file.stateDict].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => {
        const name = k.slice(prefix.length);
        return [name, { ...v, shape: live.get(name)?.shape ?? v.shape }];
      }),
    )
    : live;
  if (opts.ema && sd.size === 0) {
    throw new Error(`${path} holds no EMA weights (was the run trained with ema?)`);
  }
  const c = run.config;
  const overrides = { numClasses: run.derived.num_classes, imgSize: run.derived.img_size };
  const model: AnyModel = getEntry(c.model).family === "vit"
    ? buildVit(c.model, overrides, c.seed)
    : buildRegNet(c.model, overrides, c.seed);
  // Buffers (BatchNorm statistics) are not averaged by EMA: take them from the live weights.
  if (opts.ema) {
    for (const [k, v] of file.stateDict) if (!k.startsWith("_train.") && !sd.has(k)) sd.set(k, v);
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
  return evaluateDataset(data, imgSize, 128, (x, shape) => {
    const logits = scoped(() => headLogits(model, tf.tensor4d(x, shape), head).dataSync() as Float32Array);
    return Promise.resolve(logits);
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
