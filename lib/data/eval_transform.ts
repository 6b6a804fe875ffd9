/**
 * DeiT's evaluation transform (deit/datasets.py `build_transform(is_train=False)`):
 *
 *     Resize(int(size / crop_pct), interpolation=BICUBIC)   # shorter side -> S, keeps the aspect ratio
 *     CenterCrop(size)
 *     ToTensor()                                             # uint8 -> float32 / 255
 *     Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
 *
 * applied to `PIL.Image.open(path).convert("RGB")` (torchvision's `default_loader`). Images are decoded with sharp
 * (libvips); every step after decoding reproduces the PIL/torchvision arithmetic, see the comments on each step.
 * Output is channel-last (HWC) float32, the layout tf.js convolutions and patch embeddings expect.
 */
import sharp from "sharp";
import { DataError } from "./imagefolder.ts";

/** timm `IMAGENET_DEFAULT_MEAN` (RGB). */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** timm `IMAGENET_DEFAULT_STD` (RGB). */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];
/** DeiT's `--eval-crop-ratio` default: resize to 256 for a 224 crop. */
export const DEFAULT_CROP_PCT = 0.875;

/**
 * Who does the bicubic resize:
 * - "sharp": libvips `resize(kernel: "cubic")`. Fast (native, off the JS thread). Downscaling agrees with PIL to
 *   within a couple of grey levels; upscaling (images whose shorter side is below the resize target) is sampled
 *   about 0.3 px off PIL's pixel centres and differs visibly.
 * - "pil": {@link resizeBicubicPil}, a TypeScript port of Pillow's `ImagingResample` (BICUBIC, 8 bit), which gives
 *   Pillow's bytes exactly. Runs on the JS thread.
 */
export type Resampler = "sharp" | "pil";

export interface EvalTransformOptions {
  /** Side of the square output, e.g. 224. */
  size: number;
  /** Resize the shorter side to `floor(size / cropPct)` before the centre crop; default {@link DEFAULT_CROP_PCT}. */
  cropPct?: number;
  /** Per-channel (RGB) mean subtracted after scaling to [0, 1]; default {@link IMAGENET_MEAN}. */
  mean?: readonly number[];
  /** Per-channel (RGB) divisor applied after the mean; default {@link IMAGENET_STD}. */
  std?: readonly number[];
  /** Default "sharp". */
  resampler?: Resampler;
}

/** An 8-bit RGB image: `data` is [height, width, 3] row-major (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Python 3's `round()` for one argument: round half to even ("banker's rounding"). */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
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

function describe(input: string | Uint8Array): string {
  return typeof input === "string" ? input : "<bytes>";
}

/**
 * Pillow's CMYK -> RGB (`cmyk2rgb` in libImaging/Convert.c): `255 - k - c * (255 - k) / 255` per channel, with
 * Pillow's integer rounding. libvips would instead go through an ICC profile, which gives different colours.
 */
function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - cmyk[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[i * 4 + c] * nk + 128; // MULDIV255(a, b) = ((t >> 8) + t) >> 8
      const v = nk - (((t >> 8) + t) >> 8);
      out[i * 3 + c] = v < 0 ? 0 : v;
    }
  }
  return out;
}

/**
 * Decodes an image file (or its bytes) to 8-bit RGB like `PIL.Image.open(f).convert("RGB")`:
 * - embedded ICC profiles are ignored (PIL does not colour-manage; sharp would convert to sRGB by default);
 * - the EXIF orientation is ignored (PIL does not auto-rotate; neither does sharp unless asked);
 * - grey is replicated to three channels, alpha is dropped without compositing (PIL's RGBA -> RGB), palette
 *   images are expanded, 16-bit images are reduced to 8 bits, CMYK uses Pillow's formula ({@link cmykToRgb});
 * - multi-frame images (animated WebP) give their first frame, as PIL does before `seek()`.
 *
 * @throws DataError naming the file (or "<bytes>") and the reason when it cannot be read or decoded.
 */
export async function decodeRgb(input: string | Uint8Array): Promise<RgbImage> {
  const label = describe(input);
  let bytes: Uint8Array;
  if (typeof input === "string") {
    try {
      bytes = await Deno.readFile(input);
    } catch (e) {
      throw new DataError(`cannot read image ${label}: ${(e as Error).message}`, { path: label, cause: e });
    }
  } else {
    bytes = input;
  }
  try {
    // failOn "error": like PIL, reject truncated or broken data but accept files libjpeg only warns about.
    const image = sharp(bytes, { ignoreIcc: true, failOn: "error" });
    const meta = await image.metadata();
    if (meta.space === "cmyk") {
      // Keep the pipeline in CMYK so that libvips applies no ICC transform; convert with Pillow's formula here.
      const { data, info } = await image.pipelineColourspace("cmyk").toColourspace("cmyk").raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`expected 4 CMYK channels, got ${info.channels}`);
      const pixels = info.width * info.height;
      return {
        width: info.width,
        height: info.height,
        data: cmykToRgb(new Uint8Array(data.buffer, data.byteOffset, pixels * 4), pixels),
      };
    }
    const { data, info } = await image.removeAlpha().toColourspace("srgb").raw().toBuffer({
      resolveWithObject: true,
    });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`expected 8-bit RGB, got ${info.channels} channels, ${data.length} bytes`);
    }
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    throw new DataError(`cannot decode image ${label}: ${(e as Error).message}`, { path: label, cause: e });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pillow's bicubic resampling (libImaging/Resample.c), 8 bits per channel.
//
// A separable convolution with Keys' cubic kernel (a = -0.5) whose support is stretched by the scale factor when
// downscaling (so it antialiases), sampled at pixel centres `(i + 0.5) * in / out`. Weights are normalised to sum
// to 1 and stored as fixed point with 22 fraction bits; each pass rounds and clamps to uint8. The horizontal pass
// runs first (only over the rows the vertical pass reads), then the vertical pass. A pass whose size does not
// change is skipped.
// ---------------------------------------------------------------------------------------------------------------

const PRECISION_BITS = 32 - 8 - 2;

function bicubicKernel(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  /** Taps per output pixel (row stride of `weights`). */
  ksize: number;
  /** First input index and number of taps, per output pixel: [outSize, 2]. */
  bounds: Int32Array;
  /** Fixed-point weights: [outSize, ksize]. */
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole input range [0, inSize). */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale; // bicubic support is 2 input pixels, stretched when downscaling
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const ss = 1 / filterScale; // Pillow multiplies by the reciprocal; dividing could round differently
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < count; x++) {
      k[x] = bicubicKernel((x + xmin - center + 0.5) * ss);
      sum += k[x];
    }
    for (let x = 0; x < count; x++) {
      const w = (sum !== 0 ? k[x] / sum : k[x]) * (1 << PRECISION_BITS);
      weights[xx * ksize + x] = w < 0 ? Math.trunc(w - 0.5) : Math.trunc(w + 0.5); // C's (int)(w -/+ 0.5)
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

/** Pillow's `clip8`: drop the fraction bits (arithmetic shift) and clamp to [0, 255]. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes to `width` x `height` exactly like Pillow's `Image.resize(size, Image.BICUBIC)` on an RGB image
 * (no `box`, no `reducing_gap`, which is how torchvision calls it).
 */
export function resizeBicubicPil(img: RgbImage, width: number, height: number): RgbImage {
  const half = 1 << (PRECISION_BITS - 1);
  const vert = precomputeCoeffs(img.height, height);
  let src = img.data;
  let srcW = img.width;
  let rowOffset = 0; // first input row held in `src`
  if (width !== img.width) {
    // Horizontal pass over the rows [first, last) that the vertical pass will read.
    const first = vert.bounds[0];
    const last = vert.bounds[(height - 1) * 2] + vert.bounds[(height - 1) * 2 + 1];
    const { ksize, bounds, weights } = precomputeCoeffs(img.width, width);
    const tmp = new Uint8Array(width * (last - first) * 3);
    for (let y = first; y < last; y++) {
      const inRow = y * img.width * 3;
      const outRow = (y - first) * width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[xx * 2];
        const count = bounds[xx * 2 + 1];
        const kOff = xx * ksize;
        let r = half, g = half, b = half;
        for (let x = 0; x < count; x++) {
          const w = weights[kOff + x];
          const p = inRow + (xmin + x) * 3;
          r += src[p] * w;
          g += src[p + 1] * w;
          b += src[p + 2] * w;
        }
        tmp[outRow + xx * 3] = clip8(r);
        tmp[outRow + xx * 3 + 1] = clip8(g);
        tmp[outRow + xx * 3 + 2] = clip8(b);
      }
    }
    src = tmp;
    srcW = width;
    rowOffset = first;
  }
  if (height === img.height) return { width: srcW, height, data: src === img.data ? src.slice() : src };
  const out = new Uint8Array(width * height * 3);
  const stride = srcW * 3;
  for (let yy = 0; yy < height; yy++) {
    const ymin = vert.bounds[yy * 2] - rowOffset;
    const count = vert.bounds[yy * 2 + 1];
    const kOff = yy * vert.ksize;
    for (let i = 0; i < stride; i++) {
      let acc = half;
      for (let y = 0; y < count; y++) acc += src[(ymin + y) * stride + i] * vert.weights[kOff + y];
      out[yy * stride + i] = clip8(acc);
    }
  }
  return { width, height, data: out };
}

/** libvips bicubic resize (see {@link Resampler}); the input is raw pixels, so no JPEG shrink-on-load happens. */
async function resizeSharp(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { kernel: "cubic", fit: "fill" })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/**
 * `ToTensor` + `Normalize` as a per-channel lookup table, computed with torch's float32 arithmetic:
 * `x = f32(v / 255)`, then `f32(f32(x - f32(mean)) / f32(std))`. (Each JS double operation rounded once to
 * float32 equals the float32 operation: double has more than twice float32's precision.) Returns [3, 256].
 */
function normalizeTable(mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== 3 || std.length !== 3) throw new RangeError("mean and std need 3 values (RGB)");
  const f32 = Math.fround;
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = f32(mean[c]);
    const s = f32(std[c]);
    if (s === 0) throw new RangeError("std must not be 0");
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f32(f32(f32(v / 255) - m) / s);
  }
  return lut;
}

const lutCache = new Map<string, Float32Array>();
function cachedNormalizeTable(mean: readonly number[], std: readonly number[]): Float32Array {
  const key = `${mean.join(",")}|${std.join(",")}`;
  let lut = lutCache.get(key);
  if (!lut) lutCache.set(key, lut = normalizeTable(mean, std));
  return lut;
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
  const lut = cachedNormalizeTable(mean, std);
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
 * DeiT's eval transform of one image file (or its encoded bytes).
 *
 * @returns [size, size, 3] float32, channel-last, row-major, normalised with `mean`/`std`.
 * @throws DataError naming the file (or "<bytes>") when it cannot be read or decoded.
 */
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
    throw new DataError(`cannot transform image ${describe(input)}: ${(e as Error).message}`, {
      path: describe(input),
      cause: e,
    });
  }
}

export async function evalTransform(
  input: string | Uint8Array,
  opts: EvalTransformOptions,
): Promise<Float32Array> {
  const img = await decodeRgb(input);
  try {
    return await transformRgb(img, opts);
  } catch (e) {
    if (e instanceof RangeError) throw e; // bad options: the caller's bug, not the image's
    throw new DataError(`cannot transform image ${describe(input)}: ${(e as Error).message}`, {
      path: describe(input),
      cause: e,
    });
  }
}
