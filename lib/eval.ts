/**
 * Evaluation of a classifier on an ImageFolder: top-1, top-5, throughput, and optional per-image predictions.
 */
import * as tf from "@tensorflow/tfjs";
import type { DataError, ImageSample } from "./data/imagefolder.ts";
import { evalBatches } from "./data/loader.ts";
import { Progress } from "./progress.ts";
import type { Classifier } from "./classifier.ts";

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
  let count = 0, hit1 = 0, hit5 = 0;
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
      const { idx, prob } = tf.tidy(() => {
        const x = tf.tensor4d(b.images, [n, opts.size, opts.size, 3]);
        const probs = tf.softmax(model.predict(x));
        const k = Math.min(5, probs.shape[1]);
        const top = tf.topk(probs, k);
        return { idx: top.indices, prob: top.values };
      });
      const k = idx.shape[1]!;
      const idxData = await idx.data(), probData = await prob.data();
      tf.dispose([idx, prob]);
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const top = Array.from(idxData.subarray(i * k, (i + 1) * k));
        const t = b.targets[i];
        if (top[0] === t) hit1++;
        if (top.includes(t)) hit5++;
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
    unreadable,
    imagesPerS: count / seconds,
    seconds,
  };
}
