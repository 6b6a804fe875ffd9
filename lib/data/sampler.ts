/**
 * Epoch orderings of a dataset's indices, seeded by (seed, epoch) so that any epoch can be regenerated (resume)
 * on any process.
 *
 * - {@link RepeatedAugSampler}: DeiT's `RASampler` (repeated augmentation ×3). Per epoch: a random permutation,
 *   each index repeated `numRepeats` times in a row, padded (by wrapping) to a multiple of `numReplicas`; rank r
 *   takes every `numReplicas`-th entry from r, so the copies of one image go to different ranks (consecutive
 *   ranks) and meet in the same global batch; each rank keeps only its first
 *   `floor(floor(N / 256) · 256 / numReplicas)` entries, so an epoch stays about N samples in all (rounded down
 *   to a multiple of 256) and sees about N / numRepeats distinct images.
 *   Differences from the reference, on purpose: the permutation is seeded by (seed, epoch) — the reference uses
 *   the epoch alone; with `numReplicas = 1` the copies simply follow each other in the one stream (DeiT's
 *   single-process run silently falls back to a plain sampler instead); a dataset smaller than the rounding
 *   multiple (the reference would give an empty epoch) keeps floor(N / numReplicas) per rank.
 * - {@link ShuffleSampler}: a plain seeded shuffle (torch `RandomSampler`, or `DistributedSampler` when
 *   `numReplicas` > 1: padded by wrapping to a multiple of `numReplicas`, rank r takes entries r, r + R, …).
 */
import { derivedRng, randperm } from "./transforms/random.ts";

/** Yields a fixed-length ordering of dataset indices for each epoch. */
export interface Sampler {
  /** Indices per epoch (this rank's). */
  readonly length: number;
  /** This rank's indices for `epoch` (a fresh array; same epoch → same indices). */
  indices(epoch: number): Int32Array;
}

/** Stream tag of the sampler's generator in {@link derivedRng} (keeps it apart from the loader's streams). */
const SAMPLER_STREAM = 0x5a4d;

export interface RepeatedAugSamplerOptions {
  /** Dataset length N. */
  size: number;
  /** Copies of each index per epoch; default 3. */
  numRepeats?: number;
  /** Ranks sharing the epoch; default 1. */
  numReplicas?: number;
  /** This rank, 0 ≤ rank < numReplicas; default 0. */
  rank?: number;
  seed?: number;
  /** Shuffle (default) or keep index order. */
  shuffle?: boolean;
  /** The epoch is rounded down to a multiple of this (over all ranks); default 256 (RASampler's). */
  roundTo?: number;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}

/** DeiT's repeated-augmentation sampler (see the module comment). */
export class RepeatedAugSampler implements Sampler {
  readonly size: number;
  readonly numRepeats: number;
  readonly numReplicas: number;
  readonly rank: number;
  readonly seed: number;
  readonly shuffle: boolean;
  /** Entries per rank before truncation: ceil(N · repeats / replicas). */
  readonly numSamples: number;
  readonly length: number;

  constructor(opts: RepeatedAugSamplerOptions) {
    this.size = opts.size;
    this.numRepeats = opts.numRepeats ?? 3;
    this.numReplicas = opts.numReplicas ?? 1;
    this.rank = opts.rank ?? 0;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    const roundTo = opts.roundTo ?? 256;
    checkInt("size", this.size, 1);
    checkInt("numRepeats", this.numRepeats, 1);
    checkInt("numReplicas", this.numReplicas, 1);
    checkInt("roundTo", roundTo, 1);
    checkInt("seed", this.seed, 0);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.numReplicas) {
      throw new RangeError(`rank must be in [0, ${this.numReplicas}), got ${this.rank}`);
    }
    this.numSamples = Math.ceil((this.size * this.numRepeats) / this.numReplicas);
    const rounded = Math.floor(this.size / roundTo) * roundTo;
    this.length = Math.floor((rounded > 0 ? rounded : this.size) / this.numReplicas);
  }

  indices(epoch: number): Int32Array {
    checkInt("epoch", epoch, 0);
    const { size, numRepeats: k, numReplicas: R, rank } = this;
    const perm = this.shuffle ? randperm(derivedRng(SAMPLER_STREAM, this.seed, epoch), size) : null;
    const total = this.numSamples * R;
    const out = new Int32Array(this.length);
    // entry p of the repeated, padded list is perm[(p mod N·k) div k]; this rank takes p = rank + i·R
    for (let i = 0; i < this.length; i++) {
      const p = (rank + i * R) % total;
      const q = Math.floor((p % (size * k)) / k);
      out[i] = perm ? perm[q] : q;
    }
    return out;
  }
}

export interface ShuffleSamplerOptions {
  size: number;
  seed?: number;
  shuffle?: boolean;
  numReplicas?: number;
  rank?: number;
}

/** A plain seeded shuffle per epoch (see the module comment). */
export class ShuffleSampler implements Sampler {
  readonly size: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly numReplicas: number;
  readonly rank: number;
  readonly length: number;

  constructor(opts: ShuffleSamplerOptions) {
    this.size = opts.size;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    this.numReplicas = opts.numReplicas ?? 1;
    this.rank = opts.rank ?? 0;
    checkInt("size", this.size, 1);
    checkInt("seed", this.seed, 0);
    checkInt("numReplicas", this.numReplicas, 1);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.numReplicas) {
      throw new RangeError(`rank must be in [0, ${this.numReplicas}), got ${this.rank}`);
    }
    this.length = Math.ceil(this.size / this.numReplicas);
  }

  indices(epoch: number): Int32Array {
    checkInt("epoch", epoch, 0);
    const perm = this.shuffle ? randperm(derivedRng(SAMPLER_STREAM + 1, this.seed, epoch), this.size) : null;
    const out = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) {
      const p = (this.rank + i * this.numReplicas) % this.size;
      out[i] = perm ? perm[p] : p;
    }
    return out;
  }
}
