/**
 * The training input pipeline: sampler → decode (the dataset's `get`, e.g. sharp on libuv threads) → DeiT's
 * training transform (in a pool of Deno Workers, or inline) → NHWC float32 batches → Mixup/CutMix, with the
 * next batch(es) loading while the caller trains on the current one.
 *
 * Determinism: the sample at position p of epoch e is transformed with `new Rng(deriveSeed(SAMPLE, seed, e, p))`
 * and batch b's Mixup with `deriveSeed(MIX, seed, e, b)`; the sampler is seeded by (its seed, e). Nothing depends
 * on which thread ran what or in which order results came back, so the batches are the same bytes with 0, 1 or
 * N workers, and a loader restored from {@link TrainLoader.state} continues with exactly the batches the saved
 * run would have produced.
 *
 * Unreadable images (a text file named .jpg, a truncated JPEG, a FIFO: the dataset's `get` throws a
 * {@link DataError}) do not stop training: each is replaced by the next readable image of the dataset (index + 1,
 * + 2, …, wrapping; the same replacement every time, whatever the timing, so batches stay reproducible), is
 * remembered so that it is not read again, and is reported — its first few files at once, and at the end of each
 * epoch that met new ones a warning with the count. Past {@link defaultMaxUnreadable} of them (more than 1% of the
 * dataset, and at least 10) the loader fails with a DataError naming the first few: that many is a broken or
 * wrong data folder, not a stray file.
 *
 * Worker strategy (measured by bench/data.ts): JPEG decoding stays on the main thread's sharp calls (libvips
 * runs them on its own threads, and `Dataset` objects cannot cross into a Worker); the JS pixel work (crop,
 * Pillow-exact resize, RandAugment, normalise, erasing) — by far the larger part — is sent, one sample per
 * message, to the least-busy Worker. One Worker per spare core; on a 2-core machine one Worker keeps the main
 * thread free for the model.
 */
import { Rng } from "../base/rng.ts";
import { DataError, type Dataset, type ImageU8, type Sample } from "./dataset.ts";
import { type MixMode, Mixup, type MixupOptions } from "./mixup.ts";
import type { Sampler } from "./sampler.ts";
import type { AugmentReply, AugmentRequest } from "./augment_worker.ts";
import { buildTrainTransform, type TrainTransform, type TrainTransformConfig } from "./transforms/train.ts";
import { derivedRng, deriveSeed } from "./transforms/random.ts";

/** Stream tags for {@link deriveSeed}: per-sample transforms and per-batch mixing never share a generator. */
export const SAMPLE_STREAM = 1;
export const MIX_STREAM = 2;

export interface TrainBatch {
  /** [n, size, size, 3] float32, normalised, augmented (and mixed when Mixup is on). */
  x: Float32Array;
  /** [n] hard labels (before mixing). */
  labels: Int32Array;
  /** [n, numClasses] soft targets (label smoothing + Mixup/CutMix), when Mixup is on. */
  target?: Float32Array;
  /** Mixup/CutMix λ (1 when the batch was not mixed), when Mixup is on. */
  lam?: number;
  mixMode?: MixMode;
  /** Dataset indices of the n samples. */
  indices: Int32Array;
  epoch: number;
  /** Batch index within the epoch. */
  step: number;
}

/** Where a loader is: the next batch it yields is batch `step` of epoch `epoch`. */
export interface LoaderState {
  epoch: number;
  step: number;
  /** Recorded to catch restoring into a differently configured loader. */
  seed?: number;
  batchSize?: number;
}

export interface TrainLoaderOptions {
  dataset: Dataset;
  /** Plain data: Workers build the same transform from it. */
  transform: TrainTransformConfig;
  sampler: Sampler;
  batchSize: number;
  /** Seed of the per-sample and per-batch generators; default 0. */
  seed?: number;
  /** Augmentation Workers; 0 runs the transform on the calling thread. Default 1. */
  workers?: number;
  /** Batches loaded ahead of the one being consumed; default 1. */
  prefetch?: number;
  /** Samples being decoded or transformed at once; default max(4, 4 · workers). */
  concurrency?: number;
  /** Mixup/CutMix settings (numClasses required); null/undefined = off. */
  mixup?: MixupOptions | null;
  /** Drop the last incomplete batch (as DeiT's training loader); default true. */
  dropLast?: boolean;
  /**
   * Unreadable images skipped (each replaced by the next readable one) before the loader fails; default
   * {@link defaultMaxUnreadable} of the dataset's size. 0: the first unreadable image fails.
   */
  maxUnreadable?: number;
  /** Where the warnings about unreadable images go (default `console.warn`, i.e. stderr and a run's log). */
  warn?: (line: string) => void;
}

/** An image the loader could not read, and why (the DataError's message, which names the file). */
export interface UnreadableImage {
  /** Index in the dataset. */
  index: number;
  /** The file, when the error names one. */
  path?: string;
  reason: string;
}

/** Unreadable images named in a warning or error before "…". */
const NAMED_UNREADABLE = 3;

/**
 * How many unreadable training images a loader skips before it fails: more than 1% of the dataset (ImageNet's
 * 1.28M: 12,812), and at least 10 (so that a few stray files in a small folder never stop a run).
 */
export function defaultMaxUnreadable(datasetSize: number): number {
  return Math.max(10, Math.floor(datasetSize / 100));
}

// ---------------------------------------------------------------------------------------------------- workers

/** A counting semaphore, FIFO. */
class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

interface Job {
  resolve: (data: Float32Array) => void;
  reject: (e: Error) => void;
  worker: number;
}

/** Workers running the training transform, one sample per message, least-busy first. */
export class AugmentPool {
  readonly #workers: Worker[] = [];
  readonly #load: number[] = [];
  readonly #jobs = new Map<number, Job>();
  #nextId = 0;
  #closed = false;

  constructor(size: number, config: TrainTransformConfig) {
    for (let w = 0; w < size; w++) {
      const worker = new Worker(new URL("./augment_worker.ts", import.meta.url).href, { type: "module" });
      worker.onmessage = (e: MessageEvent<AugmentReply>) => this.#onReply(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#failWorker(w, new Error(`augmentation worker ${w} failed: ${e.message}`));
      };
      worker.postMessage({ type: "init", config } satisfies AugmentRequest);
      this.#workers.push(worker);
      this.#load.push(0);
    }
  }

  get size(): number {
    return this.#workers.length;
  }

  /** Transforms `img` with `new Rng(seed)` in a Worker; resolves with the [H, W, 3] float32 data. */
  run(img: ImageU8, seed: number): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(new Error("augmentation pool is closed"));
    let w = 0;
    for (let i = 1; i < this.#load.length; i++) if (this.#load[i] < this.#load[w]) w = i;
    const id = this.#nextId++;
    this.#load[w]++;
    return new Promise<Float32Array>((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject, worker: w });
      // no transfer list: the decoder's buffer may be shared or external, so it is copied
      this.#workers[w].postMessage(
        {
          type: "job",
          id,
          seed,
          width: img.width,
          height: img.height,
          data: img.data,
        } satisfies AugmentRequest,
      );
    });
  }

  #onReply(r: AugmentReply): void {
    const job = this.#jobs.get(r.id);
    if (!job) return;
    this.#jobs.delete(r.id);
    this.#load[job.worker]--;
    if (r.type === "done") job.resolve(r.data);
    else job.reject(new Error(r.message));
  }

  #failWorker(w: number, err: Error): void {
    for (const [id, job] of this.#jobs) {
      if (job.worker !== w) continue;
      this.#jobs.delete(id);
      job.reject(err);
    }
    this.#load[w] = Infinity; // send it nothing more
  }

  /** Stops the Workers; pending jobs are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    const err = new Error("augmentation pool closed");
    for (const job of this.#jobs.values()) job.reject(err);
    this.#jobs.clear();
  }
}

// ---------------------------------------------------------------------------------------------------- loader

/** Yields DeiT training batches; see the module comment. Call {@link close} (or `await using`) when done. */
export class TrainLoader {
  readonly dataset: Dataset;
  readonly sampler: Sampler;
  readonly batchSize: number;
  readonly seed: number;
  readonly size: number;
  readonly dropLast: boolean;
  readonly workers: number;
  readonly #prefetch: number;
  readonly #sem: Semaphore;
  readonly #mixup: Mixup | null;
  readonly #transformConfig: TrainTransformConfig;
  /** Unreadable images skipped before the loader fails. */
  readonly maxUnreadable: number;
  readonly #defaultLimit: boolean;
  readonly #warn: (line: string) => void;
  /** Unreadable images by dataset index, in the order they were found. */
  readonly #unreadable = new Map<number, UnreadableImage>();
  /** How many of {@link #unreadable} the last end-of-epoch warning counted. */
  #reported = 0;
  #transform: TrainTransform | null = null;
  #pool: AugmentPool | null = null;
  #epoch = 0;
  #step = 0;
  #iterating = false;
  #closed = false;

  constructor(opts: TrainLoaderOptions) {
    this.dataset = opts.dataset;
    this.sampler = opts.sampler;
    this.batchSize = opts.batchSize;
    this.seed = opts.seed ?? 0;
    this.size = opts.transform.size;
    this.dropLast = opts.dropLast ?? true;
    this.workers = opts.workers ?? 1;
    this.#prefetch = opts.prefetch ?? 1;
    this.#transformConfig = opts.transform;
    const int = (name: string, v: number, min: number) => {
      if (!Number.isInteger(v) || v < min) {
        throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
      }
    };
    int("batchSize", this.batchSize, 1);
    int("seed", this.seed, 0);
    int("workers", this.workers, 0);
    int("prefetch", this.#prefetch, 0);
    const concurrency = opts.concurrency ?? Math.max(4, 4 * this.workers);
    int("concurrency", concurrency, 1);
    this.#sem = new Semaphore(concurrency);
    this.#defaultLimit = opts.maxUnreadable === undefined;
    this.maxUnreadable = opts.maxUnreadable ?? defaultMaxUnreadable(this.dataset.length);
    int("maxUnreadable", this.maxUnreadable, 0);
    this.#warn = opts.warn ?? ((line) => console.warn(line));
    this.#mixup = opts.mixup ? new Mixup(opts.mixup) : null;
    if (this.#mixup) {
      const last = this.sampler.length % this.batchSize;
      if (this.batchSize % 2 !== 0 || (!this.dropLast && last % 2 !== 0)) {
        throw new RangeError(
          "Mixup needs even batches: use an even batchSize (and dropLast, or an even last batch)",
        );
      }
    }
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(`an epoch of ${this.sampler.length} samples gives no batch of ${this.batchSize}`);
    }
  }

  /** The unreadable images met so far (each replaced by the next readable image), in the order found. */
  get unreadable(): readonly UnreadableImage[] {
    return [...this.#unreadable.values()];
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.sampler.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Where the loader is (the next batch it will yield); save it with a checkpoint. */
  get state(): LoaderState {
    const nb = this.batchesPerEpoch;
    const epoch = this.#epoch + Math.floor(this.#step / nb);
    return { epoch, step: this.#step % nb, seed: this.seed, batchSize: this.batchSize };
  }

  /** Restores a saved {@link state}: the next batch yielded is batch `step` of epoch `epoch`. */
  set state(s: LoaderState) {
    if (this.#iterating) throw new Error("cannot set the loader state while an epoch is being iterated");
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || !Number.isInteger(s.step) || s.step < 0) {
      throw new RangeError(`bad loader state ${JSON.stringify(s)}`);
    }
    if (s.seed !== undefined && s.seed !== this.seed) {
      throw new RangeError(`loader state was saved with seed ${s.seed}, this loader has ${this.seed}`);
    }
    if (s.batchSize !== undefined && s.batchSize !== this.batchSize) {
      throw new RangeError(
        `loader state was saved with batch size ${s.batchSize}, this loader has ${this.batchSize}`,
      );
    }
    const nb = this.batchesPerEpoch;
    this.#epoch = s.epoch + Math.floor(s.step / nb);
    this.#step = s.step % nb;
  }

  /**
   * Yields the rest of the current epoch's batches (all of them after a fresh start or an epoch boundary), then
   * moves the state to the next epoch. Stopping early leaves the state after the last batch yielded.
   */
  async *epoch(): AsyncGenerator<TrainBatch, void, undefined> {
    if (this.#closed) throw new Error("the loader is closed");
    if (this.#iterating) throw new Error("an epoch of this loader is already being iterated");
    this.#iterating = true;
    const { epoch, step: first } = this.state;
    this.#epoch = epoch;
    this.#step = first;
    const indices = this.sampler.indices(epoch);
    const nb = this.batchesPerEpoch;
    const pending: Promise<TrainBatch>[] = [];
    let next = first;
    let failed = false;
    const topUp = () => {
      while (next < nb && pending.length <= this.#prefetch) {
        const p = this.#loadBatch(epoch, next++, indices);
        p.catch(() => {}); // awaited below; keeps an abandoned prefetch from going unhandled
        pending.push(p);
      }
    };
    try {
      while (this.#step < nb) {
        topUp();
        const batch = await pending.shift()!;
        this.#step++;
        topUp();
        yield batch;
      }
      this.#epoch = epoch + 1;
      this.#step = 0;
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      await Promise.allSettled(pending);
      this.#iterating = false;
      if (!failed) this.#reportUnreadable(epoch);
    }
  }

  /** The end-of-epoch warning, when the epoch met unreadable images not reported yet. */
  #reportUnreadable(epoch: number): void {
    const all = this.unreadable;
    const fresh = all.length - this.#reported;
    if (fresh <= 0) return;
    this.#reported = all.length;
    this.#warn(
      `warning: epoch ${epoch}: ${fresh} unreadable training image(s) skipped, each replaced by the next ` +
        `readable one (${all.length} of ${this.dataset.length} so far; the run stops past ${this.maxUnreadable}): ` +
        namedUnreadable(all),
    );
  }

  /**
   * Sample `index`, or — when it cannot be read — the first readable one after it (wrapping). Each unreadable
   * image is recorded (and read no more); past {@link maxUnreadable} of them this throws.
   */
  async #readSample(index: number): Promise<{ sample: Sample; index: number }> {
    const n = this.dataset.length;
    for (let k = 0; k < n; k++) {
      const j = (index + k) % n;
      if (this.#unreadable.has(j)) continue;
      try {
        return { sample: await this.dataset.get(j), index: j };
      } catch (e) {
        if (!(e instanceof DataError)) throw e; // not the image's fault: stop
        this.#noteUnreadable(j, e);
      }
    }
    throw new DataError(`all ${n} training images of ${this.dataset.name} are unreadable`);
  }

  #noteUnreadable(index: number, e: DataError): void {
    if (this.#unreadable.has(index)) return; // two batches met it at once
    const bad: UnreadableImage = { index, reason: e.message, ...(e.path ? { path: e.path } : {}) };
    this.#unreadable.set(index, bad);
    const count = this.#unreadable.size;
    if (count > this.maxUnreadable) {
      throw new DataError(
        `${count} training images of ${this.dataset.name} are unreadable, more than the ${this.maxUnreadable} ` +
          `a run skips${this.#defaultLimit ? " (1% of the dataset, at least 10)" : ""}: check the data ` +
          `folder. ${namedUnreadable(this.unreadable)}`,
        { path: bad.path, cause: e },
      );
    }
    if (count <= NAMED_UNREADABLE) {
      this.#warn(
        `warning: skipping an unreadable training image (replaced by the next readable one): ${e.message}`,
      );
    }
  }

  /** Loads batch `step` of `epoch` (positions [step·B, step·B + B) of the epoch's indices). */
  async #loadBatch(epoch: number, step: number, indices: Int32Array): Promise<TrainBatch> {
    const start = step * this.batchSize;
    const n = Math.min(this.batchSize, indices.length - start);
    const px = this.size * this.size * 3;
    const x = new Float32Array(n * px);
    const labels = new Int32Array(n);
    const batchIndices = indices.slice(start, start + n);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        this.#sem.run(async () => {
          const pos = start + i;
          const { sample, index } = await this.#readSample(batchIndices[i]);
          batchIndices[i] = index;
          labels[i] = sample.label;
          const seed = deriveSeed(SAMPLE_STREAM, this.seed, epoch, pos);
          const out = await this.#augment(sample.image, seed);
          if (out.length !== px) {
            throw new RangeError(
              `transform gave ${out.length} values for sample ${batchIndices[i]}, expected ${px}`,
            );
          }
          x.set(out, i * px);
        })),
    );
    const batch: TrainBatch = { x, labels, indices: batchIndices, epoch, step };
    if (this.#mixup) {
      const mixed = this.#mixup.apply(
        x,
        labels,
        this.size,
        this.size,
        derivedRng(MIX_STREAM, this.seed, epoch, step),
      );
      batch.target = mixed.target;
      batch.lam = mixed.lam;
      batch.mixMode = mixed.mode;
    }
    return batch;
  }

  async #augment(img: ImageU8, seed: number): Promise<Float32Array> {
    if (this.workers === 0) {
      this.#transform ??= buildTrainTransform(this.#transformConfig);
      return (await this.#transform(img, new Rng(seed))).data;
    }
    this.#pool ??= new AugmentPool(this.workers, this.#transformConfig);
    return await this.#pool.run(img, seed);
  }

  /** Stops the Workers. The loader cannot be used afterwards. */
  close(): Promise<void> {
    this.#closed = true;
    this.#pool?.close();
    this.#pool = null;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** "first: <reason>; <reason>; <reason> …" for a warning or error. */
function namedUnreadable(all: readonly UnreadableImage[]): string {
  const named = all.slice(0, NAMED_UNREADABLE).map((u) => u.reason).join("; ");
  return `first: ${named}${
    all.length > NAMED_UNREADABLE ? ` … (${all.length - NAMED_UNREADABLE} more)` : ""
  }`;
}
