/**
 * DeiT's training transform (deit/datasets.py `build_transform(is_train=True)` → timm
 * `transforms_imagenet_train`), built from small ops that each take an image and a seeded {@link Rng}:
 *
 *     RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3, bicubic)      (≤ 32 px: RandomCrop(size, padding 4))
 *     RandomHorizontalFlip(0.5)
 *     RandAugment("rand-m9-mstd0.5-inc1")    — or ColorJitter(0.4) when RandAugment is off (timm drops the jitter
 *                                              whenever an auto-augment policy is set)
 *     ToTensor + Normalize(ImageNet mean, std)
 *     RandomErasing(p 0.25, mode "pixel")    — on the normalised image
 *
 * The ops live beside this module (geometry, pixel, rand_augment, normalize, random; mod.ts re-exports them
 * all). Every random decision is drawn from the Rng passed in, so a transform is a pure function of
 * (image, rng state): the loader seeds one Rng per sample from (seed, epoch, position) and gets the same bytes
 * on any thread.
 */
import type { Rng } from "../../base/rng.ts";
import type { ImageF32, ImageU8, Sample } from "../dataset.ts";
import { IMAGENET_MEAN, IMAGENET_STD, resizeBicubicPil } from "../image.ts";
import {
  randomCrop,
  randomHorizontalFlip,
  randomResizedCrop,
  RRC_RATIO,
  RRC_SCALE,
  type TrainResampler,
} from "./geometry.ts";
import { colorJitter } from "./pixel.ts";
import { meanFill, parseRandAugment, randAugment } from "./rand_augment.ts";
import { type EraseMode, normalize, randomErasing } from "./normalize.ts";

/** DeiT's RandAugment policy (`--aa`). */
export const DEIT_RAND_AUGMENT = "rand-m9-mstd0.5-inc1";

/**
 * The training transform's settings. Plain data (structured-clonable), so a Worker can build the same
 * transform from it. Defaults are DeiT's.
 */
export interface TrainTransformConfig {
  /** Output side, e.g. 224. */
  size: number;
  /** timm RandAugment spec; null/"" turns it off. Default {@link DEIT_RAND_AUGMENT}. */
  randAugment?: string | null;
  /**
   * ColorJitter strength for brightness, contrast and saturation; only used when RandAugment is off (timm).
   * Default 0.4 (timm's and the paper's; DeiT's main.py default is 0.3 — moot, since RandAugment is on).
   */
  colorJitter?: number | null;
  /** RandomErasing probability (`--reprob`); default 0.25; 0 turns it off. */
  reprob?: number;
  /** RandomErasing fill (`--remode`); default "pixel". */
  remode?: EraseMode;
  /** RandomErasing boxes (`--recount`); default 1. */
  recount?: number;
  /** Normalisation (RGB); default ImageNet's. */
  mean?: readonly number[];
  std?: readonly number[];
  /**
   * DeiT's small-input rule (`resize_im = input_size > 32`): when true, RandomCrop(size, padding 4) replaces
   * RandomResizedCrop. Default `size <= 32`.
   */
  smallImage?: boolean;
  /** RandomResizedCrop ranges; default [0.08, 1] and [3/4, 4/3]. */
  scale?: readonly [number, number];
  ratio?: readonly [number, number];
  /** Horizontal flip probability; default 0.5. */
  hflip?: number;
  /** Bicubic resize of the crop; default "auto" (Pillow-exact port or sharp by size; see {@link TrainResampler}). */
  resampler?: TrainResampler;
}

/** The names of the steps {@link buildTrainTransform} runs for `cfg`, in order. */
export type TrainStep =
  | "randomResizedCrop"
  | "randomCrop"
  | "hflip"
  | "randAugment"
  | "colorJitter"
  | "normalize"
  | "randomErasing";

/** The config with every default filled in. */
export function resolveTrainConfig(cfg: TrainTransformConfig): Required<TrainTransformConfig> {
  if (!Number.isInteger(cfg.size) || cfg.size <= 0) throw new RangeError(`size must be a positive integer`);
  return {
    size: cfg.size,
    randAugment: cfg.randAugment === undefined ? DEIT_RAND_AUGMENT : cfg.randAugment,
    colorJitter: cfg.colorJitter === undefined ? 0.4 : cfg.colorJitter,
    reprob: cfg.reprob ?? 0.25,
    remode: cfg.remode ?? "pixel",
    recount: cfg.recount ?? 1,
    mean: cfg.mean ?? IMAGENET_MEAN,
    std: cfg.std ?? IMAGENET_STD,
    smallImage: cfg.smallImage ?? cfg.size <= 32,
    scale: cfg.scale ?? RRC_SCALE,
    ratio: cfg.ratio ?? RRC_RATIO,
    hflip: cfg.hflip ?? 0.5,
    resampler: cfg.resampler ?? "auto",
  };
}

/** The pipeline {@link buildTrainTransform} builds, as step names (e.g. to log it, or to check a rule). */
export function trainTransformSteps(cfg: TrainTransformConfig): TrainStep[] {
  const c = resolveTrainConfig(cfg);
  const steps: TrainStep[] = [c.smallImage ? "randomCrop" : "randomResizedCrop"];
  if (c.hflip > 0) steps.push("hflip");
  if (c.randAugment) steps.push("randAugment");
  else if (c.colorJitter) steps.push("colorJitter"); // timm: no jitter when an auto-augment policy is on
  steps.push("normalize");
  if (c.reprob > 0) steps.push("randomErasing");
  return steps;
}

/** A training transform: decoded image + per-sample generator → normalised float32 HWC image. */
export type TrainTransform = (img: ImageU8, rng: Rng) => Promise<ImageF32>;

/** Composes the training transform described by `cfg` (see the module comment for the order). */
export function buildTrainTransform(cfg: TrainTransformConfig): TrainTransform {
  const c = resolveTrainConfig(cfg);
  const steps = trainTransformSteps(c);
  const ra = c.randAugment ? parseRandAugment(c.randAugment) : null;
  const hp = {
    fill: meanFill(c.mean),
    resample: "bicubic" as const,
    translateConst: Math.trunc(c.size * 0.45),
  };
  const jitter = c.colorJitter ?? 0;
  return async (img: ImageU8, rng: Rng): Promise<ImageF32> => {
    let u8 = img;
    for (const step of steps) {
      switch (step) {
        case "randomResizedCrop":
          u8 = await randomResizedCrop(u8, rng, {
            size: c.size,
            scale: c.scale,
            ratio: c.ratio,
            resampler: c.resampler,
          });
          break;
        case "randomCrop":
          // An image of another side (the 8×8 digits into a 28-px model) is first resized to the model's
          // side, bicubic, as the eval transform does (lib/train/evaluate.ts).
          if (u8.width !== c.size || u8.height !== c.size) {
            u8 = { ...resizeBicubicPil(u8, c.size, c.size), channels: 3 };
          }
          u8 = randomCrop(u8, rng, c.size, 4);
          break;
        case "hflip":
          u8 = randomHorizontalFlip(u8, rng, c.hflip);
          break;
        case "randAugment":
          u8 = randAugment(u8, rng, ra!, hp);
          break;
        case "colorJitter":
          u8 = colorJitter(u8, rng, { brightness: jitter, contrast: jitter, saturation: jitter });
          break;
      }
    }
    const f32 = normalize(u8, c.mean, c.std);
    if (steps.includes("randomErasing")) {
      randomErasing(f32, rng, { probability: c.reprob, mode: c.remode, minCount: 1, maxCount: c.recount });
    }
    return f32;
  };
}

/** An augmented training sample. */
export interface AugmentedSample {
  image: ImageF32;
  label: number;
}

/** Runs `transform` on a decoded sample. */
export async function augmentSample(
  sample: Sample,
  rng: Rng,
  transform: TrainTransform,
): Promise<AugmentedSample> {
  return { image: await transform(sample.image, rng), label: sample.label };
}

/** Runs `transform` on each sample with its own generator `rngs[i]`, writing into one NHWC batch. */
export async function augmentBatch(
  samples: readonly Sample[],
  rngs: readonly Rng[],
  transform: TrainTransform,
  size: number,
): Promise<{ x: Float32Array; labels: Int32Array }> {
  const px = size * size * 3;
  const x = new Float32Array(samples.length * px);
  const labels = new Int32Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const out = await transform(samples[i].image, rngs[i]);
    if (out.data.length !== px) {
      throw new RangeError(`transform gave ${out.width}x${out.height}, expected ${size}`);
    }
    x.set(out.data, i * px);
    labels[i] = samples[i].label;
  }
  return { x, labels };
}
