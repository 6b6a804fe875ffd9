/**
 * Evaluation of a training run on a Dataset split: DeiT's eval transform, the mode's inference head, top-1,
 * top-5 and the cross-entropy loss.
 */
import { type Dataset, type ImageU8 } from "../data/dataset.ts";
import { deitEvalImage } from "../data/eval_transform.ts";

export interface EvalMetrics {
  acc1: number;
  acc5: number;
  loss: number;
  count: number;
}

/** DeiT's eval transform for one decoded image (lib/data/eval_transform.ts `deitEvalImage`). */
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
 * Top-1/top-5 accuracy (%) and mean cross-entropy of `predict` over `data`, batch by batch.
 * `predict` maps an NHWC float batch to flat logits `[n, C]`.
 */
export async function evaluateDataset(
  data: Dataset,
  size: number,
  batchSize: number,
  predict: (x: Float32Array, shape: [number, number, number, number]) => Promise<Float32Array>,
): Promise<EvalMetrics> {
  let hit1 = 0, hit5 = 0, lossSum = 0, count = 0;
  const per = size * size * 3;
  for (let start = 0; start < data.length; start += batchSize) {
    const n = Math.min(batchSize, data.length - start);
    const x = new Float32Array(n * per);
    const labels = new Int32Array(n);
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const s = await data.get(start + i);
      labels[i] = s.label;
      await evalImage(s.image, size, x.subarray(i * per, (i + 1) * per));
    }));
    const logits = await predict(x, [n, size, size, 3]);
    const C = logits.length / n;
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * C, (i + 1) * C);
      const y = labels[i];
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let z = 0, above = 0;
      for (const v of row) {
        z += Math.exp(v - max);
        if (v > row[y]) above++;
      }
      lossSum += Math.log(z) + max - row[y];
      if (above === 0) hit1++;
      if (above < 5) hit5++;
    }
    count += n;
  }
  return { acc1: (100 * hit1) / count, acc5: (100 * hit5) / count, loss: lossSum / count, count };
}
