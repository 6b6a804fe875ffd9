/**
 * RandAugment as timm implements it (`timm/data/auto_augment.py`, `rand_augment_transform`), e.g. DeiT's
 * `rand-m9-mstd0.5-inc1`:
 *
 * - `numLayers` (2) ops drawn uniformly *with replacement* from the op set ("inc1": the "increasing" set, whose
 *   severity grows with the magnitude for every op);
 * - each op runs with probability `prob` (0.5); when it runs, its magnitude is drawn ~ N(m, mstd) (m 9, std 0.5),
 *   clipped to [0, 10] (`_LEVEL_DENOM`), then mapped to the op's argument (the `LEVEL_TO_ARG` functions below);
 *   signed ops (rotate, shear, translate, the enhancements) flip the sign with probability 0.5;
 * - geometric ops fill uncovered pixels with the ImageNet mean colour (timm's `img_mean`: round(255 · mean) =
 *   (124, 116, 104)) and interpolate bicubically (DeiT passes `interpolation="bicubic"`, which timm forwards to the
 *   ops; with "random" timm would pick bilinear or bicubic per op).
 *
 * The draws happen in timm's order: op choices, then per op the apply test, the magnitude, the sign.
 */
import type { Rng } from "../../base/rng.ts";
import type { ImageU8 } from "../dataset.ts";
import { IMAGENET_MEAN, pyRound } from "../image.ts";
import { type AffineResample, type Rgb, rotate, shearX, shearY, translateX, translateY } from "./geometry.ts";
import {
  autocontrast,
  enhanceBrightness,
  enhanceColor,
  enhanceContrast,
  enhanceSharpness,
  equalize,
  invert,
  posterize,
  solarize,
  solarizeAdd,
} from "./pixel.ts";
import { gauss, uniform } from "./random.ts";

/** timm `_LEVEL_DENOM`: magnitudes are on a 0–10 scale. */
export const LEVEL_DENOM = 10;

/** timm `_RAND_TRANSFORMS` (the original set). */
export const RAND_OPS = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "Posterize",
  "Solarize",
  "SolarizeAdd",
  "Color",
  "Contrast",
  "Brightness",
  "Sharpness",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
] as const;

/** timm `_RAND_INCREASING_TRANSFORMS` ("inc1"). */
export const RAND_INCREASING_OPS = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "PosterizeIncreasing",
  "SolarizeIncreasing",
  "SolarizeAdd",
  "ColorIncreasing",
  "ContrastIncreasing",
  "BrightnessIncreasing",
  "SharpnessIncreasing",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
] as const;

export type RandOpName =
  | (typeof RAND_OPS)[number]
  | (typeof RAND_INCREASING_OPS)[number]
  | "TranslateX"
  | "TranslateY"
  | "PosterizeOriginal";

export interface RandAugmentConfig {
  /** Mean magnitude, 0–10 scale ("m"). */
  magnitude: number;
  /** Ops per image ("n"). */
  numLayers: number;
  /** Probability of applying each drawn op ("p"). */
  prob: number;
  /** Std of the magnitude noise ("mstd"); 0 = fixed; Infinity = uniform in [0, magnitude] (timm: mstd > 100). */
  magnitudeStd: number;
  /** Upper clip of the noisy magnitude ("mmax"); default 10. */
  magnitudeMax: number;
  /** The op set ("inc1" → {@link RAND_INCREASING_OPS}, else {@link RAND_OPS}). */
  ops: readonly RandOpName[];
}

export interface RandAugmentHparams {
  /** Fill of uncovered pixels; default round(255 · ImageNet mean) = (124, 116, 104). */
  fill?: Rgb;
  /** Filter of the geometric ops; default "bicubic" (DeiT's train interpolation). */
  resample?: AffineResample;
  /** TranslateX/YRel range as a fraction of the side; default 0.45. */
  translatePct?: number;
  /** TranslateX/Y (absolute) range in pixels; default int(0.45 · 224) = 100 (timm: `img_size_min * 0.45`). */
  translateConst?: number;
}

/** timm's `img_mean` for the ImageNet mean: `min(255, round(255 · m))` per channel (Python rounding). */
export function meanFill(mean: readonly number[] = IMAGENET_MEAN): Rgb {
  const f = (m: number) => Math.min(255, pyRound(255 * m));
  return [f(mean[0]), f(mean[1]), f(mean[2])];
}

/**
 * Parses a timm RandAugment string, e.g. "rand-m9-mstd0.5-inc1" (sections m, n, p, mstd, mmax, inc; "t…" weight
 * tables are not supported). As in timm, any "inc" value turns the increasing set on (Python `bool("0")` is true).
 */
export function parseRandAugment(spec: string): RandAugmentConfig {
  const parts = spec.split("-");
  if (parts[0] !== "rand") throw new RangeError(`RandAugment spec must start with "rand": ${spec}`);
  const cfg: RandAugmentConfig = {
    magnitude: LEVEL_DENOM,
    numLayers: 2,
    prob: 0.5,
    magnitudeStd: 0,
    magnitudeMax: LEVEL_DENOM,
    ops: RAND_OPS,
  };
  let increasing = false;
  for (const part of parts.slice(1)) {
    if (part.startsWith("t")) throw new RangeError(`RandAugment weighted op sets are not supported: ${spec}`);
    const m = /^([a-z]+)(\d.*)$/.exec(part);
    if (!m) continue; // timm skips sections without a number
    const [, key, val] = m;
    const num = Number(val);
    if (!Number.isFinite(num)) throw new RangeError(`RandAugment: bad value in "${part}" of ${spec}`);
    if (key === "mstd") cfg.magnitudeStd = num > 100 ? Infinity : num;
    else if (key === "mmax") cfg.magnitudeMax = Math.trunc(num);
    else if (key === "inc") increasing = true;
    else if (key === "m") cfg.magnitude = Math.trunc(num);
    else if (key === "n") cfg.numLayers = Math.trunc(num);
    else if (key === "p") cfg.prob = num;
    else throw new RangeError(`RandAugment: unknown section "${part}" in ${spec}`);
  }
  if (increasing) cfg.ops = RAND_INCREASING_OPS;
  return cfg;
}

/** timm `_randomly_negate`: −v with probability 0.5 (`random() > 0.5`). */
function randomlyNegate(rng: Rng, v: number): number {
  return rng.next() > 0.5 ? -v : v;
}

/**
 * The op's argument for a (noisy, clipped) magnitude `level`, as timm's `LEVEL_TO_ARG`; signed ops draw their
 * sign from `rng`. Returns null for the ops without an argument (AutoContrast, Equalize, Invert).
 */
export function levelToArg(
  name: RandOpName,
  level: number,
  rng: Rng,
  hp: RandAugmentHparams = {},
): number | null {
  const l = level / LEVEL_DENOM;
  switch (name) {
    case "AutoContrast":
    case "Equalize":
    case "Invert":
      return null;
    case "Rotate":
      return randomlyNegate(rng, l * 30); // degrees, [-30, 30]
    case "Posterize":
      return Math.trunc(l * 4); // bits kept, 0..4 (severity decreases with level)
    case "PosterizeIncreasing":
      return 4 - Math.trunc(l * 4); // bits kept, 4..0
    case "PosterizeOriginal":
      return Math.trunc(l * 4) + 4;
    case "Solarize":
      return Math.min(256, Math.trunc(l * 256)); // threshold
    case "SolarizeIncreasing":
      return 256 - Math.min(256, Math.trunc(l * 256));
    case "SolarizeAdd":
      return Math.min(128, Math.trunc(l * 110));
    case "Color":
    case "Contrast":
    case "Brightness":
    case "Sharpness":
      return l * 1.8 + 0.1; // factor [0.1, 1.9]
    case "ColorIncreasing":
    case "ContrastIncreasing":
    case "BrightnessIncreasing":
    case "SharpnessIncreasing":
      return Math.max(0.1, 1 + randomlyNegate(rng, l * 0.9)); // factor 1 ± 0.9 l
    case "ShearX":
    case "ShearY":
      return randomlyNegate(rng, l * 0.3);
    case "TranslateXRel":
    case "TranslateYRel":
      return randomlyNegate(rng, l * (hp.translatePct ?? 0.45)); // fraction of the side
    case "TranslateX":
    case "TranslateY":
      return randomlyNegate(rng, l * (hp.translateConst ?? 100)); // pixels
  }
}

/** Applies one op with its argument (from {@link levelToArg}). */
export function applyOp(
  img: ImageU8,
  name: RandOpName,
  arg: number | null,
  hp: RandAugmentHparams = {},
): ImageU8 {
  const fill = hp.fill ?? meanFill();
  const rs = hp.resample ?? "bicubic";
  const a = arg ?? 0;
  switch (name) {
    case "AutoContrast":
      return autocontrast(img);
    case "Equalize":
      return equalize(img);
    case "Invert":
      return invert(img);
    case "Rotate":
      return rotate(img, a, fill, rs);
    case "Posterize":
    case "PosterizeIncreasing":
    case "PosterizeOriginal":
      return posterize(img, a);
    case "Solarize":
    case "SolarizeIncreasing":
      return solarize(img, a);
    case "SolarizeAdd":
      return solarizeAdd(img, a);
    case "Color":
    case "ColorIncreasing":
      return enhanceColor(img, a);
    case "Contrast":
    case "ContrastIncreasing":
      return enhanceContrast(img, a);
    case "Brightness":
    case "BrightnessIncreasing":
      return enhanceBrightness(img, a);
    case "Sharpness":
    case "SharpnessIncreasing":
      return enhanceSharpness(img, a);
    case "ShearX":
      return shearX(img, a, fill, rs);
    case "ShearY":
      return shearY(img, a, fill, rs);
    case "TranslateXRel":
      return translateX(img, a * img.width, fill, rs);
    case "TranslateYRel":
      return translateY(img, a * img.height, fill, rs);
    case "TranslateX":
      return translateX(img, a, fill, rs);
    case "TranslateY":
      return translateY(img, a, fill, rs);
  }
}

/** One op at a fixed magnitude (no noise, no apply test): the building block, handy for tests. */
export function applyOpAtMagnitude(
  img: ImageU8,
  name: RandOpName,
  magnitude: number,
  rng: Rng,
  hp: RandAugmentHparams = {},
): ImageU8 {
  return applyOp(img, name, levelToArg(name, magnitude, rng, hp), hp);
}

/** What one RandAugment call did (for logging and tests). */
export interface RandAugmentTrace {
  op: RandOpName;
  applied: boolean;
  magnitude?: number;
  arg?: number | null;
}

/**
 * timm `RandAugment.__call__` + `AugmentOp.__call__`. Returns the augmented image (the input itself when no op
 * ran); `trace`, when given, receives one entry per drawn op.
 */
export function randAugment(
  img: ImageU8,
  rng: Rng,
  cfg: RandAugmentConfig,
  hp: RandAugmentHparams = {},
  trace?: RandAugmentTrace[],
): ImageU8 {
  const chosen: RandOpName[] = [];
  for (let i = 0; i < cfg.numLayers; i++) chosen.push(cfg.ops[rng.int(cfg.ops.length)]);
  let out = img;
  for (const op of chosen) {
    if (cfg.prob < 1 && rng.next() > cfg.prob) {
      trace?.push({ op, applied: false });
      continue;
    }
    let m = cfg.magnitude;
    if (cfg.magnitudeStd === Infinity) m = uniform(rng, 0, m);
    else if (cfg.magnitudeStd > 0) m = gauss(rng, m, cfg.magnitudeStd);
    m = Math.max(0, Math.min(m, cfg.magnitudeMax || LEVEL_DENOM));
    const arg = levelToArg(op, m, rng, hp);
    out = applyOp(out, op, arg, hp);
    trace?.push({ op, applied: true, magnitude: m, arg });
  }
  return out;
}
