/**
 * Images as the PyTorch reference sees them, shared by the eval transform, the training transforms, the datasets
 * and the reports:
 *
 * - {@link decodeRgb}: `PIL.Image.open(path).convert("RGB")` (torchvision's `default_loader`), decoded with sharp
 *   (libvips) and corrected to PIL's semantics (no colour management, no EXIF rotation, Pillow's CMYK formula);
 * - {@link resizeBicubicPil}: Pillow's bicubic `Image.resize`, byte for byte; {@link resizeSharp}: libvips'
 *   bicubic, faster and close (see {@link Resampler});
 * - {@link normalizeTable}: `ToTensor()` + `Normalize(mean, std)` in torch's float32 arithmetic, as a lookup table;
 *   {@link IMAGENET_MEAN} / {@link IMAGENET_STD}, timm's defaults;
 * - {@link pyRound}: Python's `round()`, which torchvision and timm use for sizes and offsets.
 *
 * Images are 8-bit RGB, channel-last (HWC) row-major ({@link RgbImage}; a dataset's `ImageU8` is one).
 */
import sharp from "sharp";
import { DataError, readRegularFile } from "./dataset.ts";

/** timm `IMAGENET_DEFAULT_MEAN` (RGB). */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** timm `IMAGENET_DEFAULT_STD` (RGB). */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/**
 * Who does the bicubic resize:
 * - "sharp": libvips `resize(kernel: "cubic")` ({@link resizeSharp}). Fast (native, off the JS thread).
 *   Downscaling agrees with PIL to within a couple of grey levels; upscaling (images whose shorter side is below
 *   the resize target) is sampled about 0.3 px off PIL's pixel centres and differs visibly.
 * - "pil": {@link resizeBicubicPil}, a TypeScript port of Pillow's `ImagingResample` (BICUBIC, 8 bit), which gives
 *   Pillow's bytes exactly. Runs on the JS thread.
 */
export type Resampler = "sharp" | "pil";

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

/** How messages name an image input: its path, or "<bytes>" for encoded bytes in memory. */
export function imageLabel(input: string | Uint8Array): string {
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
  const label = imageLabel(input);
  let bytes: Uint8Array;
  if (typeof input === "string") {
    bytes = await readRegularFile(input, "image"); // a FIFO named x.jpg is refused, not waited on
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
export async function resizeSharp(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { kernel: "cubic", fit: "fill" })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

const luts = new Map<string, Float32Array>();

/**
 * `ToTensor` + `Normalize` as a per-channel lookup table [3, 256], computed with torch's float32 arithmetic:
 * `x = f32(v / 255)`, then `f32(f32(x - f32(mean)) / f32(std))`. (Each JS double operation rounded once to
 * float32 equals the float32 operation: double has more than twice float32's precision.) Tables are cached per
 * (mean, std); do not write into one.
 */
export function normalizeTable(mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== 3 || std.length !== 3) throw new RangeError("mean and std need 3 values (RGB)");
  const key = `${mean.join(",")}|${std.join(",")}`;
  let lut = luts.get(key);
  if (lut) return lut;
  const f32 = Math.fround;
  lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = f32(mean[c]);
    const s = f32(std[c]);
    if (s === 0) throw new RangeError("std must not be 0");
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f32(f32(f32(v / 255) - m) / s);
  }
  luts.set(key, lut);
  return lut;
}
