/**
 * Learning-rate schedule: DeiT's cosine with linear warm-up (timm CosineLRScheduler as DeiT configures it:
 * t_initial = epochs, lr_min, warmup_lr_init, warmup_t, no warm-up prefix, one cycle), and the linear
 * scaling rule lr = base × batch / 512.
 */

export interface CosineSchedule {
  /** Peak learning rate (after scaling). */
  lr: number;
  /** Epochs of the cosine (DeiT: the run's epochs, 300). */
  epochs: number;
  warmupEpochs: number;
  warmupLr: number;
  minLr: number;
}

/** DeiT's rule: lr = base_lr × total batch / 512 (main.py). */
export function scaledLr(baseLr: number, totalBatch: number): number {
  return (baseLr * totalBatch) / 512;
}

/**
 * Learning rate at (possibly fractional) epoch `t`. Warm-up: linear from warmupLr, reaching lr at t =
 * warmupEpochs; then lr_min + ½(lr − lr_min)(1 + cos(π·t/epochs)) — t is *not* shifted by the warm-up (timm's
 * warmup_prefix=False), so the cosine is already slightly below lr when warm-up ends. Past `epochs`: lr_min.
 * Per epoch as DeiT: call with the epoch index (the reference steps the scheduler with the finished epoch's
 * index, so epoch e trains at lrAt(e)); per step: lrAt(epoch + step / stepsPerEpoch).
 */
export function lrAt(s: CosineSchedule, t: number): number {
  if (t < s.warmupEpochs) return s.warmupLr + (t * (s.lr - s.warmupLr)) / s.warmupEpochs;
  if (t >= s.epochs) return s.minLr;
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos((Math.PI * t) / s.epochs));
}
