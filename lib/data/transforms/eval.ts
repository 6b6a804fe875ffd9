/**
 * DeiT's evaluation transform (deit/datasets.py `build_transform(is_train=False)`):
 *
 *     Resize(int(size / crop_pct), interpolation=BICUBIC)   # shorter side -> S, keeps the aspect ratio
 *     CenterCrop(size)
 *     ToTensor()                                             # uint8 -> float32 / 255
 *     Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
 *
 * applied to `PIL.Image.open(path).convert("RGB")` (torchvision's `default_loader`). Decoding, the bicubic resize
 * and the normalisation table are lib/data/image.ts's; this module adds the resize and crop geometry, each step
 * reproducing the PIL/torchvision arithmetic (see the comments on each). Output is channel-last (HWC) float32, the
 * layout tf.js convolutions and patch embeddings expect.
 */
import { DataError } from "../dataset.ts";
import {
  decodeRgb,
  imageLabel,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeTable,
  pyRound,
  type Resampler,
  resizeBicubicPil,
  resizeSharp,
  type RgbImage,
} from "../image.ts";

/** DeiT's `--eval-crop-ratio` default: resize to 256 for a 224 crop. */
export const DEFAULT_CROP_PCT = 0.875;

export interface EvalTransformOptions {
  /** Side of the square output, e.g. 224. */
  size: number;
  /** Resize the shorter side to `floor(size / cropPct)` before the centre crop; default {@link DEFAULT_CROP_PCT}. */
  cropPct?: number;
  /** Per-channel (RGB) mean subtracted after scaling to [0, 1]; default {@link IMAGENET_MEAN}. */
  mean?: readonly number[];
  /** Per-channel (RGB) divisor applied after the mean; default {@link IMAGENET_STD}. */
  std?: readonly number[];
  /** Default "sharp" (see {@link Resampler}). */
  resampler?: Resampler;
}

/** The shorter side torchvision resizes to for a crop of `size`: DeiT's `int(size / crop_pct)` (256 for 224). */
export function resizeTarget(size: number, cropPct = DEFAULT_CROP_PCT): number {
  return Math.floor(size / cropPct);
}

/**
 * torchvision `_compute_resized_output_size(image_size, [shortSide])`: the shorter side becomes `shortSide` and
 * the longer one `int(shortSide * long / short)` (truncated, not rounded). Returns [width, height].
 */
export function resizedSize(width: number, height: number, shortSide: number): [number, number] {
  if (width <= height) return [shortSide, Math.trunc((shortSide * height) / width)];
  return [Math.trunc((shortSide * width) / height), shortSide];
}

/**
 * Offset of the crop window in one dimension, as torchvision `center_crop`: `int(round((len - size) / 2))`, or,
 * when the image is smaller than the crop, minus the left/top padding `(size - len) // 2` (torchvision first pads
 * the PIL image with 0 on both sides, the extra pixel going right/bottom, then crops at 0).
 */
export function cropOffset(len: number, size: number): number {
  return size > len ? -Math.floor((size - len) / 2) : pyRound((len - size) / 2);
}

/**
 * Centre-crops `img` to `size` x `size` and normalises into `out` (or a new array): [size, size, 3] HWC float32.
 * Pixels outside the image (only when it is smaller than the crop) are padding of value 0 before normalisation,
 * as in torchvision, i.e. `(0 - mean) / std`, not 0.
 */
export function cropNormalize(
  img: RgbImage,
  size: number,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
  out: Float32Array = new Float32Array(size * size * 3),
): Float32Array {
  if (out.length !== size * size * 3) {
    throw new RangeError(`output needs ${size * size * 3} floats, has ${out.length}`);
  }
  const lut = normalizeTable(mean, std);
  const top = cropOffset(img.height, size);
  const left = cropOffset(img.width, size);
  const { width, height, data } = img;
  let o = 0;
  for (let y = 0; y < size; y++) {
    const sy = top + y;
    const rowInside = sy >= 0 && sy < height;
    for (let x = 0; x < size; x++) {
      const sx = left + x;
      if (rowInside && sx >= 0 && sx < width) {
        const p = (sy * width + sx) * 3;
        out[o++] = lut[data[p]];
        out[o++] = lut[256 + data[p + 1]];
        out[o++] = lut[512 + data[p + 2]];
      } else {
        out[o++] = lut[0];
        out[o++] = lut[256];
        out[o++] = lut[512];
      }
    }
  }
  return out;
}

/**
 * Resize (shorter side to `floor(size / cropPct)`, bicubic) + centre crop + normalise.
 * An image whose size already equals the resize target is not resampled (torchvision returns it unchanged).
 */
export async function transformRgb(
  img: RgbImage,
  opts: EvalTransformOptions,
  out?: Float32Array,
): Promise<Float32Array> {
  const { size, cropPct = DEFAULT_CROP_PCT, mean = IMAGENET_MEAN, std = IMAGENET_STD, resampler = "sharp" } =
    opts;
  if (!Number.isInteger(size) || size <= 0) {
    throw new RangeError(`size must be a positive integer, got ${size}`);
  }
  if (!(cropPct > 0)) throw new RangeError(`cropPct must be > 0, got ${cropPct}`);
  const [w, h] = resizedSize(img.width, img.height, resizeTarget(size, cropPct));
  let resized = img;
  if (w !== img.width || h !== img.height) {
    resized = resampler === "pil" ? resizeBicubicPil(img, w, h) : await resizeSharp(img, w, h);
  }
  return cropNormalize(resized, size, mean, std, out);
}

/**
 * DeiT's eval transform as its `build_transform` applies it: above 32 px, the shorter side to size/0.875 (PIL
 * bicubic) then the centre crop; at 32 px and below (CIFAR, Fashion-MNIST) it only normalises — an image of
 * another side (e.g. the 8×8 digits into a 28-px model) is first resized to the model's side, bicubic. Training
 * evaluation and `deno task eval` both go through this (they agree to the image).
 */
export async function deitEvalImage(img: RgbImage, size: number, out?: Float32Array): Promise<Float32Array> {
  if (size > 32) return await transformRgb(img, { size, resampler: "pil" }, out);
  const fit = img.width === size && img.height === size ? img : resizeBicubicPil(img, size, size);
  return cropNormalize(fit, size, IMAGENET_MEAN, IMAGENET_STD, out);
}

/** {@link deitEvalImage} of an image file or its bytes (decode errors are DataErrors naming the file). */
export async function deitEvalTransform(input: string | Uint8Array, size: number): Promise<Float32Array> {
  const img = await decodeRgb(input);
  try {
    return await deitEvalImage(img, size);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw new DataError(`cannot transform image ${imageLabel(input)}: ${(e as Error).message}`, {
      path: imageLabel(input),
      cause: e,
    });
  }
}

/**
 * DeiT's eval transform of one image file (or its encoded bytes).
 *
 * @returns [size, size, 3] float32, channel-last, row-major, normalised with `mean`/`std`.
 * @throws DataError naming the file (or "<bytes>") when it cannot be read or decoded.
 */
export async function evalTransform(
  input: string | Uint8Array,
  opts: EvalTransformOptions,
): Promise<Float32Array> {
  const img = await decodeRgb(input);
  try {
    return await transformRgb(img, opts);
  } catch (e) {
    if (e instanceof RangeError) throw e; // bad options: the caller's bug, not the image's
    throw new DataError(`cannot transform image ${imageLabel(input)}: ${(e as Error).message}`, {
      path: imageLabel(input),
      cause: e,
    });
  }
}
