/**
 * Mixup / CutMix per batch, as timm's `Mixup` with DeiT's settings (`--mixup 0.8 --cutmix 1.0 --mixup-prob 1.0
 * --mixup-switch-prob 0.5 --mixup-mode batch --smoothing 0.1`):
 *
 * - with probability `prob` the batch is mixed; CutMix is chosen with probability `switchProb`, else Mixup;
 * - λ ~ Beta(α, α) with α = `cutmixAlpha` or `mixupAlpha` ({@link sampleBeta}: two Gamma draws,
 *   Marsaglia–Tsang, all from the seeded {@link Rng});
 * - the partner of sample i is sample B−1−i (timm's `x.flip(0)`);
 * - Mixup: x ← λ·x + (1−λ)·flip(x), in float32 like torch;
 * - CutMix: a box from timm's `rand_bbox` (side √(1−λ) of the image's, centre uniform, clipped to the image) is
 *   pasted from the partner, and λ is corrected to 1 − box area / image area;
 * - targets: label-smoothed one-hot (off = s/C, on = 1 − s + s/C) mixed the same way:
 *   λ·y + (1−λ)·flip(y) (timm `mixup_target`).
 *
 * Batches are NHWC float32 (the model's layout); timm's are NCHW, which changes nothing here.
 */
import type { Rng } from "../base/rng.ts";

export interface MixupOptions {
  /** Mixup's Beta α; 0 disables Mixup. Default 0.8. */
  mixupAlpha?: number;
  /** CutMix's Beta α; 0 disables CutMix. Default 1.0. */
  cutmixAlpha?: number;
  /** Probability of mixing a batch at all. Default 1.0. */
  prob?: number;
  /** Probability of CutMix rather than Mixup when both are enabled. Default 0.5. */
  switchProb?: number;
  /** Label smoothing folded into the targets. Default 0.1. */
  labelSmoothing?: number;
  /** Correct λ to the clipped CutMix box's area (timm's default, and DeiT's). Default true. */
  correctLam?: boolean;
  numClasses: number;
}

export type MixMode = "mixup" | "cutmix" | "none";

export interface MixedBatch {
  /** The mixed images (the input array, mixed in place), [B, H, W, C]. */
  x: Float32Array;
  /** Soft targets [B, numClasses]. */
  target: Float32Array;
  /** The λ that weighs each sample's own label (after CutMix's area correction). */
  lam: number;
  mode: MixMode;
  /** CutMix's box (rows [yl, yh), columns [xl, xh)). */
  box?: Box;
}

export interface Box {
  yl: number;
  yh: number;
  xl: number;
  xh: number;
}

/** Gamma(shape, 1) by Marsaglia & Tsang (2000); shapes below 1 use the boost Gamma(a+1) · U^(1/a). */
export function sampleGamma(rng: Rng, shape: number): number {
  if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
  if (shape < 1) {
    const u = 1 - rng.next(); // (0, 1]
    return sampleGamma(rng, shape + 1) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      // standard normal by Box–Muller (one of the pair)
      const u1 = 1 - rng.next();
      const u2 = rng.next();
      x = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next();
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

/** timm `one_hot` + `mixup_target`, in float32: λ·smooth(y) + (1−λ)·smooth(flip(y)). */
export function mixupTarget(labels: Int32Array, numClasses: number, lam = 1, smoothing = 0): Float32Array {
  const B = labels.length;
  const f32 = Math.fround;
  const off = f32(smoothing / numClasses);
  const on = f32(1 - smoothing + smoothing / numClasses);
  const l1 = f32(lam);
  const l2 = f32(1 - lam);
  const t = new Float32Array(B * numClasses);
  for (let i = 0; i < B; i++) {
    const a = labels[i], b = labels[B - 1 - i];
    if (a < 0 || a >= numClasses || b < 0 || b >= numClasses) {
      throw new RangeError(`label outside [0, ${numClasses})`);
    }
    for (let k = 0; k < numClasses; k++) {
      const y1 = k === a ? on : off;
      const y2 = k === b ? on : off;
      t[i * numClasses + k] = f32(f32(y1 * l1) + f32(y2 * l2));
    }
  }
  return t;
}

/**
 * timm `rand_bbox` (no margin): cut = (int(H·√(1−λ)), int(W·√(1−λ))), centre uniform over the image
 * (`np.random.randint(0, H)`, y first), box = centre ± cut//2 clipped to the image.
 */
export function randBbox(rng: Rng, height: number, width: number, lam: number): Box {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(height * ratio);
  const cutW = Math.trunc(width * ratio);
  const cy = rng.int(height);
  const cx = rng.int(width);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return {
    yl: clip(cy - Math.floor(cutH / 2), height),
    yh: clip(cy + Math.floor(cutH / 2), height),
    xl: clip(cx - Math.floor(cutW / 2), width),
    xh: clip(cx + Math.floor(cutW / 2), width),
  };
}

/** timm `cutmix_bbox_and_lam` (no min/max): the box and, when `correct`, λ = 1 − box area / image area. */
export function cutmixBboxAndLam(
  rng: Rng,
  height: number,
  width: number,
  lam: number,
  correct = true,
): { box: Box; lam: number } {
  const box = randBbox(rng, height, width, lam);
  if (correct) lam = 1 - ((box.yh - box.yl) * (box.xh - box.xl)) / (height * width);
  return { box, lam };
}

/** Mixup in place: x[i] ← f32(f32(x[i]·λ) + f32(x[B−1−i]·(1−λ))) (torch's float32 `mul_` / `add_`). */
export function mixImages(x: Float32Array, batch: number, lam: number): void {
  const n = x.length / batch;
  const l1 = Math.fround(lam), l2 = Math.fround(1 - lam);
  const f32 = Math.fround;
  for (let i = 0; i < Math.ceil(batch / 2); i++) {
    const j = batch - 1 - i;
    const oi = i * n, oj = j * n;
    for (let k = 0; k < n; k++) {
      const a = x[oi + k], b = x[oj + k];
      x[oi + k] = f32(f32(a * l1) + f32(b * l2));
      if (j !== i) x[oj + k] = f32(f32(b * l1) + f32(a * l2));
    }
  }
}

/** CutMix in place: the box of every image is replaced by its partner's (the pairs swap boxes). */
export function pasteBoxes(x: Float32Array, batch: number, height: number, width: number, box: Box): void {
  const n = x.length / batch;
  const channels = n / (height * width);
  const rowLen = (box.xh - box.xl) * channels;
  if (rowLen <= 0) return;
  const tmp = new Float32Array(rowLen);
  for (let i = 0; i < Math.floor(batch / 2); i++) {
    const j = batch - 1 - i;
    for (let y = box.yl; y < box.yh; y++) {
      const off = (y * width + box.xl) * channels;
      const a = x.subarray(i * n + off, i * n + off + rowLen);
      const b = x.subarray(j * n + off, j * n + off + rowLen);
      tmp.set(a);
      a.set(b);
      b.set(tmp);
    }
  }
}

/** timm `Mixup` in "batch" mode. */
export class Mixup {
  readonly mixupAlpha: number;
  readonly cutmixAlpha: number;
  readonly prob: number;
  readonly switchProb: number;
  readonly labelSmoothing: number;
  readonly correctLam: boolean;
  readonly numClasses: number;

  constructor(opts: MixupOptions) {
    this.mixupAlpha = opts.mixupAlpha ?? 0.8;
    this.cutmixAlpha = opts.cutmixAlpha ?? 1.0;
    this.prob = opts.prob ?? 1.0;
    this.switchProb = opts.switchProb ?? 0.5;
    this.labelSmoothing = opts.labelSmoothing ?? 0.1;
    this.correctLam = opts.correctLam ?? true;
    this.numClasses = opts.numClasses;
    if (!Number.isInteger(this.numClasses) || this.numClasses <= 0) {
      throw new RangeError(`numClasses must be a positive integer`);
    }
    if (!(this.mixupAlpha > 0) && !(this.cutmixAlpha > 0)) {
      throw new RangeError("one of mixupAlpha, cutmixAlpha must be > 0");
    }
  }

  /** timm `_params_per_batch`: (λ, CutMix?) — λ = 1 when the batch is not mixed. */
  params(rng: Rng): { lam: number; cutmix: boolean } {
    if (!(rng.next() < this.prob)) return { lam: 1, cutmix: false };
    let cutmix = false;
    let alpha: number;
    if (this.mixupAlpha > 0 && this.cutmixAlpha > 0) {
      cutmix = rng.next() < this.switchProb;
      alpha = cutmix ? this.cutmixAlpha : this.mixupAlpha;
    } else if (this.mixupAlpha > 0) {
      alpha = this.mixupAlpha;
    } else {
      cutmix = true;
      alpha = this.cutmixAlpha;
    }
    return { lam: sampleBeta(rng, alpha, alpha), cutmix };
  }

  /**
   * Mixes a batch in place and builds its targets. `x` is [batch, height, width, C] float32; the batch size must
   * be even (timm asserts it).
   */
  apply(x: Float32Array, labels: Int32Array, height: number, width: number, rng: Rng): MixedBatch {
    const batch = labels.length;
    if (batch % 2 !== 0) throw new RangeError(`Mixup needs an even batch size, got ${batch}`);
    if (x.length % (batch * height * width) !== 0) {
      throw new RangeError(`x has ${x.length} values, not a multiple of ${batch}x${height}x${width}`);
    }
    let { lam, cutmix } = this.params(rng);
    let mode: MixMode = "none";
    let box: Box | undefined;
    if (lam !== 1) {
      if (cutmix) {
        ({ box, lam } = cutmixBboxAndLam(rng, height, width, lam, this.correctLam));
        pasteBoxes(x, batch, height, width, box);
        mode = "cutmix";
      } else {
        mixImages(x, batch, lam);
        mode = "mixup";
      }
    }
    const target = mixupTarget(labels, this.numClasses, lam, this.labelSmoothing);
    return box ? { x, target, lam, mode, box } : { x, target, lam, mode };
  }
}
