/**
 * Colour and tone operations on 8-bit RGB images with Pillow's exact arithmetic (they back RandAugment and
 * ColorJitter):
 *
 * - `ImageOps`: {@link autocontrast}, {@link equalize}, {@link invert}, {@link posterize}, {@link solarize}, and
 *   timm's {@link solarizeAdd} — each a per-channel lookup table (`Image.point`);
 * - `ImageEnhance`: {@link enhanceColor}, {@link enhanceContrast}, {@link enhanceBrightness},
 *   {@link enhanceSharpness} — `Image.blend(degenerate, img, factor)` with a degenerate image (grey version,
 *   mean grey, black, SMOOTH-filtered); Pillow blends in float32 and truncates, clamping only when extrapolating;
 * - {@link colorJitter}: torchvision `ColorJitter(brightness, contrast, saturation)` on a PIL image (the three
 *   enhancements in a random order with factors uniform in [max(0, 1 − j), 1 + j]).
 *
 * Every function returns a new image and leaves its input untouched.
 */
import type { Rng } from "../../base/rng.ts";
import type { ImageU8 } from "../dataset.ts";
import { image } from "./geometry.ts";
import { shuffleInPlace, uniform } from "./random.ts";

/** `Image.point(lut)`: `lut` has 256 entries (all channels) or 768 (R, G, B tables one after the other). */
export function applyLut(img: ImageU8, lut: ArrayLike<number>): ImageU8 {
  const src = img.data;
  const out = new Uint8Array(src.length);
  if (lut.length === 256) {
    for (let i = 0; i < src.length; i++) out[i] = lut[src[i]];
  } else if (lut.length === 768) {
    for (let i = 0; i < src.length; i += 3) {
      out[i] = lut[src[i]];
      out[i + 1] = lut[256 + src[i + 1]];
      out[i + 2] = lut[512 + src[i + 2]];
    }
  } else {
    throw new RangeError(`a lookup table has 256 or 768 entries, got ${lut.length}`);
  }
  return image(img.width, img.height, out);
}

/** `Image.histogram()` of an RGB image: 768 counts, R then G then B. */
export function histogram(img: ImageU8): Uint32Array {
  const h = new Uint32Array(768);
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    h[d[i]]++;
    h[256 + d[i + 1]]++;
    h[512 + d[i + 2]]++;
  }
  return h;
}

/**
 * `ImageOps.autocontrast(img)` (cutoff 0): per channel, maps [lo, hi] (the darkest and lightest values present)
 * onto [0, 255] with `int(v · 255/(hi − lo) − lo · 255/(hi − lo))`, clamped; a flat channel is left as it is.
 */
export function autocontrast(img: ImageU8): ImageU8 {
  const h = histogram(img);
  const lut = new Uint8Array(768);
  for (let c = 0; c < 3; c++) {
    const base = c * 256;
    let lo = 0;
    while (lo < 256 && h[base + lo] === 0) lo++;
    let hi = 255;
    while (hi >= 0 && h[base + hi] === 0) hi--;
    if (hi <= lo) {
      for (let v = 0; v < 256; v++) lut[base + v] = v;
      continue;
    }
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    for (let v = 0; v < 256; v++) {
      const ix = Math.trunc(v * scale + offset);
      lut[base + v] = ix < 0 ? 0 : ix > 255 ? 255 : ix;
    }
  }
  return applyLut(img, lut);
}

/**
 * `ImageOps.equalize(img)`: per channel, `step = (N − count of the last present value) // 255` and
 * `lut[v] = (step // 2 + Σ_{u < v} hist[u]) // step`; a channel with at most one value present (or step 0) is
 * left as it is.
 */
export function equalize(img: ImageU8): ImageU8 {
  const h = histogram(img);
  const lut = new Uint8Array(768);
  for (let c = 0; c < 3; c++) {
    const base = c * 256;
    let present = 0, total = 0, last = 0;
    for (let v = 0; v < 256; v++) {
      const n = h[base + v];
      if (n) {
        present++;
        total += n;
        last = n;
      }
    }
    const step = present <= 1 ? 0 : Math.floor((total - last) / 255);
    if (!step) {
      for (let v = 0; v < 256; v++) lut[base + v] = v;
      continue;
    }
    let n = Math.floor(step / 2);
    for (let v = 0; v < 256; v++) {
      const q = Math.floor(n / step);
      lut[base + v] = q > 255 ? 255 : q;
      n += h[base + v];
    }
  }
  return applyLut(img, lut);
}

/** `ImageOps.invert`: 255 − v. */
export function invert(img: ImageU8): ImageU8 {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = 255 - v;
  return applyLut(img, lut);
}

/** `ImageOps.posterize(img, bits)`: keeps the `bits` most significant bits (0 → black). timm: 8+ is a no-op. */
export function posterize(img: ImageU8, bits: number): ImageU8 {
  if (bits >= 8) return image(img.width, img.height, img.data.slice());
  const mask = ~((1 << (8 - Math.max(0, bits))) - 1) & 0xff;
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v & mask;
  return applyLut(img, lut);
}

/** `ImageOps.solarize(img, threshold)`: values ≥ threshold are inverted. */
export function solarize(img: ImageU8, threshold: number): ImageU8 {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v < threshold ? v : 255 - v;
  return applyLut(img, lut);
}

/** timm `solarize_add(img, add, thresh=128)`: values below `threshold` get `add` (capped at 255). */
export function solarizeAdd(img: ImageU8, add: number, threshold = 128): ImageU8 {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v < threshold ? Math.min(255, v + add) : v;
  return applyLut(img, lut);
}

/** Pillow's RGB → L: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16` (ITU-R 601-2 luma, rounded). */
export function toGrey(img: ImageU8): Uint8Array {
  const d = img.data;
  const out = new Uint8Array(img.width * img.height);
  for (let i = 0, p = 0; p < out.length; i += 3, p++) {
    out[p] = (d[i] * 19595 + d[i + 1] * 38470 + d[i + 2] * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/** Pillow's `ImagingBlend` for one byte pair: float32 `in1 + alpha · (in2 − in1)`, truncated (clamped when
 * extrapolating). `alpha32` must already be rounded to float32. */
function blendByte(in1: number, in2: number, alpha32: number, extrapolate: boolean): number {
  const v = Math.fround(in1 + Math.fround(alpha32 * (in2 - in1)));
  if (!extrapolate) return Math.trunc(v);
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
}

/**
 * `Image.blend(degenerate, img, alpha)` where `degenerate` is given per byte (an array as long as `img.data`),
 * per pixel (grey, one value per pixel, replicated to R, G, B) or as one constant.
 */
export function blend(degenerate: Uint8Array | number, img: ImageU8, alpha: number): ImageU8 {
  const a = Math.fround(alpha);
  const extrapolate = !(a >= 0 && a <= 1);
  const src = img.data;
  const out = new Uint8Array(src.length);
  if (typeof degenerate === "number") {
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) lut[v] = blendByte(degenerate, v, a, extrapolate);
    for (let i = 0; i < src.length; i++) out[i] = lut[src[i]];
  } else if (degenerate.length === src.length) {
    for (let i = 0; i < src.length; i++) out[i] = blendByte(degenerate[i], src[i], a, extrapolate);
  } else if (degenerate.length * 3 === src.length) {
    for (let p = 0, i = 0; p < degenerate.length; p++, i += 3) {
      const g = degenerate[p];
      out[i] = blendByte(g, src[i], a, extrapolate);
      out[i + 1] = blendByte(g, src[i + 1], a, extrapolate);
      out[i + 2] = blendByte(g, src[i + 2], a, extrapolate);
    }
  } else {
    throw new RangeError(`degenerate image of ${degenerate.length} values for ${src.length} bytes`);
  }
  return image(img.width, img.height, out);
}

/** `ImageEnhance.Color(img).enhance(factor)`: blend with the grey version (0 → grey, 1 → unchanged). */
export function enhanceColor(img: ImageU8, factor: number): ImageU8 {
  return blend(toGrey(img), img, factor);
}

/** `ImageEnhance.Contrast(img).enhance(factor)`: blend with the mean grey level, `int(mean(L) + 0.5)`. */
export function enhanceContrast(img: ImageU8, factor: number): ImageU8 {
  const grey = toGrey(img);
  let sum = 0;
  for (let i = 0; i < grey.length; i++) sum += grey[i];
  const mean = Math.trunc(sum / grey.length + 0.5);
  return blend(mean, img, factor);
}

/** `ImageEnhance.Brightness(img).enhance(factor)`: blend with black. */
export function enhanceBrightness(img: ImageU8, factor: number): ImageU8 {
  return blend(0, img, factor);
}

/**
 * `img.filter(ImageFilter.SMOOTH)`: the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, rounded; the border rows and
 * columns are copied unfiltered (Pillow's `ImagingFilter3x3`).
 */
export function smooth(img: ImageU8): Uint8Array {
  const { width: W, height: H, data } = img;
  const out = data.slice();
  if (W < 3 || H < 3) return out;
  const s = W * 3;
  for (let y = 1; y < H - 1; y++) {
    for (let x = 1; x < W - 1; x++) {
      const p = y * s + x * 3;
      for (let c = p; c < p + 3; c++) {
        const sum = data[c - s - 3] + data[c - s] + data[c - s + 3] + data[c - 3] + 5 * data[c] +
          data[c + 3] +
          data[c + s - 3] + data[c + s] + data[c + s + 3];
        // sum / 13 is never within float error of x.5, so integer rounding equals Pillow's float (v + 0.5) cast
        out[c] = Math.floor((2 * sum + 13) / 26);
      }
    }
  }
  return out;
}

/** `ImageEnhance.Sharpness(img).enhance(factor)`: blend with the SMOOTH-filtered image (factor > 1 sharpens). */
export function enhanceSharpness(img: ImageU8, factor: number): ImageU8 {
  return blend(smooth(img), img, factor);
}

export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
}

/**
 * torchvision `ColorJitter(brightness, contrast, saturation)` (no hue) on a PIL image: a random order of the
 * three adjustments, each factor uniform in [max(0, 1 − j), 1 + j] (j = 0 leaves that adjustment out);
 * brightness/contrast/saturation are `ImageEnhance.Brightness/Contrast/Color`.
 */
export function colorJitter(img: ImageU8, rng: Rng, opts: ColorJitterOptions): ImageU8 {
  const order = shuffleInPlace(rng, [0, 1, 2, 3]); // torchvision permutes four (hue is the 4th, unused here)
  const factor = (j: number | undefined) => (j ? uniform(rng, Math.max(0, 1 - j), 1 + j) : null);
  const b = factor(opts.brightness);
  const c = factor(opts.contrast);
  const s = factor(opts.saturation);
  let out = img;
  for (const k of order) {
    if (k === 0 && b !== null) out = enhanceBrightness(out, b);
    else if (k === 1 && c !== null) out = enhanceContrast(out, c);
    else if (k === 2 && s !== null) out = enhanceColor(out, s);
  }
  return out === img ? image(img.width, img.height, img.data.slice()) : out;
}
