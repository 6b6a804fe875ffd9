/**
 * Named recipe presets that configs and grids share, as overrides over DeiT's recipe (config.ts DEFAULTS).
 */
import type { TrainConfig } from "./config.ts";

/** A plain ViT recipe: AdamW and the cosine schedule only — no RandAugment, colour jitter, Mixup, CutMix,
 * random erasing, stochastic depth, label smoothing or repeated augmentation. */
export const PLAIN: Readonly<Partial<TrainConfig>> = Object.freeze({
  aa: "",
  color_jitter: 0,
  mixup: 0,
  cutmix: 0,
  reprob: 0,
  drop_path: 0,
  smoothing: 0,
  repeated_aug: false,
});

/** The teachers' recipe: DeiT's without the heavy augmentation (a teacher wants accuracy); label smoothing and
 * stochastic depth stay. */
export const LIGHT: Readonly<Partial<TrainConfig>> = Object.freeze({
  aa: "",
  mixup: 0,
  cutmix: 0,
  reprob: 0,
  repeated_aug: false,
});
