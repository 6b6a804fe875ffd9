/**
 * Batched evaluation input: decodes + transforms images with a bounded number of concurrent sharp calls and keeps
 * the next batch loading while the consumer (the model) works on the current one.
 */
import { DataError, type LoadableSample } from "./dataset.ts";
import type { Resampler } from "./image.ts";
import { deitEvalTransform, evalTransform } from "./transforms/eval.ts";

export interface EvalBatch<S extends LoadableSample> {
  /** [n, size, size, 3] float32, channel-last, normalised ({@link evalTransform}). */
  images: Float32Array;
  /** [n] class indices, `targets[i] = samples[i].target`. */
  targets: Int32Array;
  /** The n samples in the batch, in input order (unreadable ones left out). */
  samples: S[];
}

export interface EvalBatchOptions<S extends LoadableSample> {
  /** Samples per batch (the last batch, and batches with unreadable images, hold fewer). */
  batchSize: number;
  /** Crop size, e.g. 224. */
  size: number;
  /** Resize ratio, default 0.875 (see {@link evalTransform}). */
  cropPct?: number;
  mean?: readonly number[];
  std?: readonly number[];
  resampler?: Resampler;
  /** Images decoded at once; default `navigator.hardwareConcurrency`. sharp runs each on its own worker thread. */
  concurrency?: number;
  /**
   * DeiT's own eval transform (`deitEvalImage`: at 32 px and below only normalise, as training evaluation
   * does; above, PIL bicubic resize and centre crop) instead of the options above.
   */
  deit?: boolean;
  /**
   * Called, in sample order, for each image that cannot be read or decoded; the image is left out of its batch.
   * Without it, such an image ends the iteration with its DataError.
   */
  onError?: (sample: S, err: DataError) => void;
}

/** A counting semaphore: at most `limit` tasks run at once, started in submission order. */
class Pool {
  #active = 0;
  #waiting: (() => void)[] = [];
  /** Set when the consumer stops early: queued tasks are then skipped instead of started. */
  closed = false;

  constructor(readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T | undefined> {
    if (this.#active >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    try {
      return this.closed ? undefined : await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next(); // hand the slot over directly
      else this.#active--;
    }
  }
}

type Loaded = { ok: true; image: Float32Array } | { ok: false; error: DataError };

/**
 * Yields the samples' images in order, `batchSize` at a time, transformed by DeiT's eval transform.
 *
 * Loading of batch k+1 starts before batch k is yielded, so at most two batches' images are held at once
 * (2 * batchSize * size * size * 3 floats: about 154 MB each for 256 images at 224). Never yields an empty batch.
 *
 * @throws DataError for an unreadable image when `opts.onError` is not given.
 */
export async function* evalBatches<S extends LoadableSample>(
  samples: readonly S[],
  opts: EvalBatchOptions<S>,
): AsyncGenerator<EvalBatch<S>, void, undefined> {
  const { batchSize, size, onError } = opts;
  const concurrency = opts.concurrency ?? navigator.hardwareConcurrency ?? 4;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(`batchSize must be a positive integer`);
  }
  if (!Number.isInteger(concurrency) || concurrency <= 0) {
    throw new RangeError(`concurrency must be a positive integer`);
  }
  const transformOpts = {
    size,
    cropPct: opts.cropPct,
    mean: opts.mean,
    std: opts.std,
    resampler: opts.resampler,
  };
  const pixels = size * size * 3;
  const pool = new Pool(concurrency);

  const loadOne = async (sample: S): Promise<Loaded> => {
    try {
      const image = await pool.run(() =>
        opts.deit ? deitEvalTransform(sample.path, size) : evalTransform(sample.path, transformOpts)
      );
      return image ? { ok: true, image } : { ok: false, error: new DataError("loader closed") };
    } catch (e) {
      if (e instanceof DataError) return { ok: false, error: e };
      throw e; // not the image's fault (a bug, out of memory): stop
    }
  };

  /** Starts every image of a batch (the pool bounds how many run) and assembles them in order. */
  const loadBatch = async (start: number): Promise<EvalBatch<S> | null> => {
    const batchSamples = samples.slice(start, start + batchSize);
    const loaded = await Promise.all(batchSamples.map(loadOne));
    const images = new Float32Array(batchSamples.length * pixels);
    const kept: S[] = [];
    for (const [i, result] of loaded.entries()) {
      if (!result.ok) {
        if (pool.closed) return null;
        if (!onError) throw result.error;
        onError(batchSamples[i], result.error);
        continue;
      }
      images.set(result.image, kept.length * pixels);
      kept.push(batchSamples[i]);
    }
    if (kept.length === 0) return null;
    return {
      images: kept.length === batchSamples.length ? images : images.slice(0, kept.length * pixels),
      targets: Int32Array.from(kept, (s) => s.target),
      samples: kept,
    };
  };

  /** Starts loading a batch; the rejection handler keeps an error in a batch nobody awaits from going unhandled. */
  const startBatch = (start: number) => {
    const promise = loadBatch(start);
    promise.catch(() => {});
    return promise;
  };

  let next = samples.length > 0 ? startBatch(0) : null;
  try {
    for (let start = 0; next; start += batchSize) {
      const batch = await next;
      next = start + batchSize < samples.length ? startBatch(start + batchSize) : null; // prefetch
      if (batch) yield batch;
    }
  } finally {
    // The consumer stopped early (or a batch failed): start no more images and wait for those already decoding,
    // so that no work outlives the iteration.
    pool.closed = true;
    if (next) await next.catch(() => {});
  }
}
