/**
 * Evaluation, both ways a model is evaluated here, with DeiT's eval transform:
 * - `evaluate`: a classifier on an ImageFolder (`deno task eval`): top-1, top-5, throughput, per-image
 *   predictions, unreadable files reported and skipped;
 * - `evaluateDataset`: a training run on a Dataset split: the mode's inference head, top-1, top-5 and the
 *   cross-entropy loss.
 */
import * as tf from "@tensorflow/tfjs";
import type { ImageSample } from "../data/imagefolder.ts";
import { evalBatches } from "../data/eval_loader.ts";
import { Progress } from "../base/progress.ts";
import type { Classifier } from "../models/classifier.ts";
import { DataError, type Dataset, type ImageU8 } from "../data/dataset.ts";
import { deitEvalImage } from "../data/transforms/eval.ts";

export interface EvalMetrics {
  acc1: number;
  acc5: number;
  loss: number;
  count: number;
  /** Images whose logits were not all finite (counted wrong; the loss is then NaN). */
  nonFinite?: number;
  /** Images that could not be read (left out of every figure, as `deno task eval` does). */
  unreadable?: number;
}

/** A model whose outputs are NaN or infinite: its weights diverged (a learning rate too high, mostly). */
export class DivergedError extends Error {
  override name = "DivergedError";
}

/** DeiT's eval transform for one decoded image (lib/data/transforms/eval.ts `deitEvalImage`). */
export async function evalImage(img: ImageU8, size: number, out?: Float32Array): Promise<Float32Array> {
  return await deitEvalImage(img, size, out);
}

/** A subset view of a dataset (the first `n` indices of a fixed order). */
export function limitDataset(d: Dataset, indices: Int32Array): Dataset {
  return {
    name: `${d.name}[${indices.length}]`,
    classes: d.classes,
    length: indices.length,
    get: (i: number) => d.get(indices[i]),
  };
}

/**
 * Top-1 and top-5 of one row of logits against label `y`, and its cross-entropy. A row with a NaN or an
 * infinite logit is wrong at both (NaN compares false with everything, so it would otherwise rank first) and
 * its loss is NaN.
 */
export function scoreRow(row: Float32Array, y: number): { top1: boolean; top5: boolean; loss: number } {
  let max = -Infinity;
  for (const v of row) {
    if (!Number.isFinite(v)) return { top1: false, top5: false, loss: NaN };
    max = Math.max(max, v);
  }
  let z = 0, above = 0;
  for (const v of row) {
    z += Math.exp(v - max);
    if (v > row[y]) above++;
  }
  return { top1: above === 0, top5: above < 5, loss: Math.log(z) + max - row[y] };
}

/**
 * Top-1/top-5 accuracy (%) and mean cross-entropy of `predict` over `data`, batch by batch.
 * `predict` maps an NHWC float batch to flat logits `[n, C]`. Logits that are NaN or infinite count wrong; unless
 * `allowNonFinite`, they are a {@link DivergedError} (a training run must stop there, not log them or keep the
 * weights as its best).
 */
export async function evaluateDataset(
  data: Dataset,
  size: number,
  batchSize: number,
  predict: (x: Float32Array, shape: [number, number, number, number]) => Promise<Float32Array>,
  opts: { allowNonFinite?: boolean } = {},
): Promise<EvalMetrics> {
  let hit1 = 0, hit5 = 0, lossSum = 0, count = 0, nonFinite = 0, unreadable = 0;
  const per = size * size * 3;
  for (let start = 0; start < data.length; start += batchSize) {
    const want = Math.min(batchSize, data.length - start);
    // Read the batch; an unreadable image is left out and counted (a dataset's own errors are DataErrors).
    const read = await Promise.all(Array.from({ length: want }, async (_, i) => {
      try {
        const s = await data.get(start + i);
        return { label: s.label, image: await evalImage(s.image, size) };
      } catch (e) {
        if (e instanceof DataError) return null;
        throw e;
      }
    }));
    const ok = read.filter((r) => r !== null);
    unreadable += want - ok.length;
    const n = ok.length;
    if (n === 0) continue;
    const x = new Float32Array(n * per);
    const labels = new Int32Array(n);
    ok.forEach((r, i) => {
      labels[i] = r.label;
      x.set(r.image, i * per);
    });
    const logits = await predict(x, [n, size, size, 3]);
    const C = logits.length / n;
    for (let i = 0; i < n; i++) {
      const r = scoreRow(logits.subarray(i * C, (i + 1) * C), labels[i]);
      if (Number.isNaN(r.loss)) nonFinite++;
      lossSum += r.loss;
      if (r.top1) hit1++;
      if (r.top5) hit5++;
    }
    count += n;
    if (nonFinite > 0 && !opts.allowNonFinite) {
      throw new DivergedError(
        `the model's outputs are NaN or infinite (${nonFinite} of the first ${count} images of ${data.name}): ` +
          "training diverged; lower --lr (or set --clip_grad)",
      );
    }
  }
  if (count === 0) throw new DataError(`${data.name}: none of its ${data.length} images could be read`);
  return {
    acc1: (100 * hit1) / count,
    acc5: (100 * hit5) / count,
    loss: lossSum / count,
    count,
    ...(nonFinite ? { nonFinite } : {}),
    ...(unreadable ? { unreadable } : {}),
  };
}

/** What evaluation needs of a model. */
export type { Classifier };

export interface EvalOptions {
  /** Input resolution of the model. */
  size: number;
  batchSize?: number;
  /** Write one JSON line per image `{file, target, top5, prob5}` here. */
  predictionsPath?: string;
  /** Show progress on stderr (default true). */
  progress?: boolean;
}

export interface EvalResult {
  /** Percent, over the images that could be read. */
  top1: number;
  top5: number;
  /** Images evaluated. */
  count: number;
  /** Images whose logits were NaN or infinite (counted wrong: the weights are broken). */
  nonFinite: number;
  /** Images that could not be read, with the reason. */
  unreadable: { file: string; reason: string }[];
  /** End to end (decode + transform + model), images/s. */
  imagesPerS: number;
  seconds: number;
}

export async function evaluate(
  model: Classifier,
  samples: ImageSample[],
  opts: EvalOptions,
): Promise<EvalResult> {
  const batchSize = opts.batchSize ?? 32;
  const unreadable: EvalResult["unreadable"] = [];
  const progress = (opts.progress ?? true) ? new Progress(samples.length, "eval") : undefined;
  const out = opts.predictionsPath
    ? await Deno.open(opts.predictionsPath, { write: true, create: true, truncate: true })
    : undefined;
  const enc = new TextEncoder();
  let count = 0, hit1 = 0, hit5 = 0, nonFinite = 0;
  const start = performance.now();
  try {
    const batches = evalBatches(samples, {
      batchSize,
      size: opts.size,
      // At 32 px and below DeiT only normalises (no resize-and-crop), as the training runs evaluate.
      deit: opts.size <= 32,
      onError: (s: ImageSample, err: DataError) => unreadable.push({ file: s.rel, reason: err.message }),
    });
    for await (const b of batches) {
      const n = b.targets.length;
      const { idx, prob, finite } = tf.tidy(() => {
        const x = tf.tensor4d(b.images, [n, opts.size, opts.size, 3]);
        const logits = model.predict(x);
        const probs = tf.softmax(logits);
        const k = Math.min(5, probs.shape[1]);
        const top = tf.topk(probs, k);
        // A row with a NaN or infinite logit ranks nothing: it counts wrong (topk would put NaN first).
        return { idx: top.indices, prob: top.values, finite: tf.all(tf.isFinite(logits), 1) };
      });
      const k = idx.shape[1]!;
      const idxData = await idx.data(), probData = await prob.data(), finiteData = await finite.data();
      tf.dispose([idx, prob, finite]);
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const top = Array.from(idxData.subarray(i * k, (i + 1) * k));
        const t = b.targets[i];
        if (!finiteData[i]) nonFinite++;
        else if (top[0] === t) hit1++;
        if (finiteData[i] && top.includes(t)) hit5++;
        if (out) {
          const p5 = Array.from(probData.subarray(i * k, (i + 1) * k), (p) => Number(p.toPrecision(6)));
          lines.push(JSON.stringify({ file: b.samples[i].rel, target: t, top5: top, prob5: p5 }));
        }
      }
      if (out) await out.write(enc.encode(lines.map((l) => l + "\n").join("")));
      count += n;
      const secs = (performance.now() - start) / 1000;
      progress?.update(
        count + unreadable.length,
        `top-1 ${(100 * hit1 / count).toFixed(2)}% ${(count / secs).toFixed(1)} im/s`,
      );
    }
  } finally {
    out?.close();
  }
  const seconds = (performance.now() - start) / 1000;
  if (count === 0) throw new Error(`none of the ${samples.length} images could be read`);
  return {
    top1: (100 * hit1) / count,
    top5: (100 * hit5) / count,
    count,
    nonFinite,
    unreadable,
    imagesPerS: count / seconds,
    seconds,
  };
}
