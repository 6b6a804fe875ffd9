/**
 * Geometric training transforms on 8-bit HWC images, with PIL/torchvision semantics:
 *
 * - {@link randomResizedCrop}: timm `RandomResizedCropAndInterpolation` (10 tries, then a centre crop clamped to
 *   the ratio range), resized with Pillow's bicubic ({@link resizeBicubicPil}) or libvips' ({@link TrainResampler});
 * - {@link randomHorizontalFlip}: torchvision `RandomHorizontalFlip(p)`;
 * - {@link randomCrop}: torchvision `RandomCrop(size, padding)` with zero padding (DeiT's rule for ≤ 32 px inputs);
 * - {@link affine}: Pillow's `Image.transform(size, AFFINE, data, resample, fillcolor=fill)`, the engine behind
 *   RandAugment's Rotate / ShearX / ShearY / TranslateXRel / TranslateYRel — inverse mapping (each output pixel
 *   centre is mapped into the input), with Pillow's bicubic (a = −1), bilinear or nearest filters.
 */
import type { Rng } from "../../base/rng.ts";
import type { ImageU8 } from "../dataset.ts";
import { pyRound, type Resampler, resizeBicubicPil, resizeSharp } from "../image.ts";
import { randint, uniform } from "./random.ts";

/** An RGB fill colour, 0–255 each. */
export type Rgb = readonly [number, number, number];

export function image(
  width: number,
  height: number,
  data: Uint8Array = new Uint8Array(width * height * 3),
): ImageU8 {
  if (data.length !== width * height * 3) {
    throw new RangeError(`image ${width}x${height} needs ${width * height * 3} bytes, got ${data.length}`);
  }
  return { data, width, height, channels: 3 };
}

/**
 * The window [left, left + w) × [top, top + h) (PIL `crop((left, top, left + w, top + h))`): pixels outside the
 * image are 0, as in PIL.
 */
export function crop(img: ImageU8, top: number, left: number, h: number, w: number): ImageU8 {
  const out = new Uint8Array(w * h * 3);
  const { width, height, data } = img;
  for (let y = 0; y < h; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(w, width - left);
    if (x1 <= x0) continue;
    const src = (sy * width + left + x0) * 3;
    out.set(data.subarray(src, src + (x1 - x0) * 3), (y * w + x0) * 3);
  }
  return image(w, h, out);
}

/**
 * Who does the bicubic resize of a crop:
 * - "pil": {@link resizeBicubicPil}, Pillow's exact bytes (what torchvision's `resized_crop` gives), pure
 *   TypeScript, on the calling thread. Cheap for small crops and for upscaling (short kernels), but its cost grows
 *   with the downscaling factor: ~5 ms for a 300×260 crop to 224 on this machine's 2 cores, against ~2 ms for sharp.
 * - "sharp": libvips `kernel: "cubic"`, off the JS thread; ~1–2 ms per call whatever the size (the round trip
 *   dominates for small images), and within a couple of grey levels of Pillow when downscaling (see
 *   lib/data/image.ts `Resampler`; upscaling differs more).
 * - "auto" (default): "pil" when the output is tiny (≤ 64 px) or the crop is not larger than the output in
 *   either side (upscaling — Pillow-exact and faster there), "sharp" when downscaling a larger crop (ImageNet's
 *   usual case, ~2.5× faster). A pure function of the sizes, so still deterministic.
 */
export type TrainResampler = Resampler | "auto";

/** The resampler "auto" picks for resizing `srcW` x `srcH` to `width` x `height`. */
export function pickResampler(srcW: number, srcH: number, width: number, height: number): Resampler {
  if (Math.max(width, height) <= 64) return "pil";
  return srcW <= width && srcH <= height ? "pil" : "sharp";
}

/** Bicubic resize to `width` x `height` (no-op copy when the size does not change, as PIL). */
export async function resize(
  img: ImageU8,
  width: number,
  height: number,
  resampler: TrainResampler = "auto",
): Promise<ImageU8> {
  if (width === img.width && height === img.height) return image(width, height, img.data.slice());
  const which = resampler === "auto" ? pickResampler(img.width, img.height, width, height) : resampler;
  if (which === "pil") {
    const r = resizeBicubicPil(img, width, height);
    return image(r.width, r.height, r.data);
  }
  const r = await resizeSharp(img, width, height);
  return image(r.width, r.height, r.data);
}

/** A crop window: top row, left column, height, width. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface RrcOptions {
  /** Output side (square), e.g. 224. */
  size: number;
  /** Range of the crop's area as a fraction of the image's; default [0.08, 1]. */
  scale?: readonly [number, number];
  /** Range of the crop's aspect ratio w/h, sampled log-uniformly; default [3/4, 4/3]. */
  ratio?: readonly [number, number];
  resampler?: TrainResampler;
}

export const RRC_SCALE: readonly [number, number] = [0.08, 1];
export const RRC_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/**
 * timm `RandomResizedCropAndInterpolation.get_params`: up to 10 tries of (area ~ U(scale) · W·H, log-ratio ~
 * U(log ratio)), w = round(√(area·r)), h = round(√(area/r)) (Python's round, half to even), accepted when it fits,
 * placed uniformly (randint over both ends). Otherwise the fallback: the largest centred crop whose ratio is
 * clamped to the range (the whole image when its ratio is inside it).
 */
export function rrcParams(
  rng: Rng,
  imgW: number,
  imgH: number,
  scale: readonly [number, number] = RRC_SCALE,
  ratio: readonly [number, number] = RRC_RATIO,
): CropBox {
  const area = imgW * imgH;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = uniform(rng, scale[0], scale[1]) * area;
    const aspect = Math.exp(uniform(rng, logLo, logHi));
    const w = pyRound(Math.sqrt(targetArea * aspect));
    const h = pyRound(Math.sqrt(targetArea / aspect));
    if (w <= imgW && h <= imgH) {
      const top = randint(rng, 0, imgH - h);
      const left = randint(rng, 0, imgW - w);
      return { top, left, height: h, width: w };
    }
  }
  return rrcFallback(imgW, imgH, ratio);
}

/** The centre crop timm falls back to after 10 failed tries. */
export function rrcFallback(
  imgW: number,
  imgH: number,
  ratio: readonly [number, number] = RRC_RATIO,
): CropBox {
  const inRatio = imgW / imgH;
  const rMin = Math.min(ratio[0], ratio[1]);
  const rMax = Math.max(ratio[0], ratio[1]);
  let w = imgW, h = imgH;
  if (inRatio < rMin) h = pyRound(w / rMin);
  else if (inRatio > rMax) w = pyRound(h * rMax);
  return { top: Math.floor((imgH - h) / 2), left: Math.floor((imgW - w) / 2), height: h, width: w };
}

/** RandomResizedCrop: {@link rrcParams}, crop, bicubic resize to `size` x `size`. */
export async function randomResizedCrop(img: ImageU8, rng: Rng, opts: RrcOptions): Promise<ImageU8> {
  const box = rrcParams(rng, img.width, img.height, opts.scale, opts.ratio);
  return await resize(
    crop(img, box.top, box.left, box.height, box.width),
    opts.size,
    opts.size,
    opts.resampler,
  );
}

/** Mirror left-right (PIL `FLIP_LEFT_RIGHT`). */
export function hflip(img: ImageU8): ImageU8 {
  const { width, height, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
    }
  }
  return image(width, height, out);
}

/** torchvision `RandomHorizontalFlip(p)`: flips when a uniform draw is below `p`; else returns `img` itself. */
export function randomHorizontalFlip(img: ImageU8, rng: Rng, p = 0.5): ImageU8 {
  return rng.next() < p ? hflip(img) : img;
}

/** Pads every side by `padding` pixels of colour `fill` (torchvision `pad(img, padding, fill)`, constant mode). */
export function pad(img: ImageU8, padding: number, fill: Rgb = [0, 0, 0]): ImageU8 {
  const w = img.width + 2 * padding;
  const h = img.height + 2 * padding;
  const out = new Uint8Array(w * h * 3);
  if (fill[0] || fill[1] || fill[2]) { for (let i = 0; i < w * h; i++) out.set(fill, i * 3); }
  for (let y = 0; y < img.height; y++) {
    out.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y + padding) * w + padding) * 3);
  }
  return image(w, h, out);
}

/**
 * torchvision `RandomCrop(size, padding)`: zero padding on all sides, then a `size` x `size` window at a uniform
 * offset (top first, then left). An image still smaller than `size` after padding is padded further on the right
 * and bottom with zeros (torchvision would need `pad_if_needed=True`, which pads both sides; DeiT's ≤ 32 px
 * inputs never need it).
 */
export function randomCrop(img: ImageU8, rng: Rng, size: number, padding = 4): ImageU8 {
  const padded = padding > 0 ? pad(img, padding) : img;
  const top = randint(rng, 0, Math.max(0, padded.height - size));
  const left = randint(rng, 0, Math.max(0, padded.width - size));
  return crop(padded, top, left, size, size);
}

// ---------------------------------------------------------------------------------------------------------------
// Pillow's affine transform (libImaging/Geometry.c, ImagingGenericTransform + the transform filters).
//
// Output pixel (x, y) samples the input at (a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f). A sample point outside
// [0, W) × [0, H) keeps the fill colour. Inside, the filter reads neighbours with edge clamping: column indices are
// clamped; the first row index is clamped and rows beyond the image repeat the previous row's interpolated value
// (Pillow's quirk, reproduced). Bicubic is Pillow's a = −1 cubic convolution, clamped and truncated to uint8;
// bilinear truncates; nearest takes the pixel containing the point.
// ---------------------------------------------------------------------------------------------------------------

export type AffineResample = "nearest" | "bilinear" | "bicubic";

/** Pillow's cubic (a = −1) through v1..v4 at fraction d between v2 and v3. */
function cubic(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p2 = v3 - v1;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return v2 + d * (p2 + d * (p3 + d * p4));
}

/**
 * `Image.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=fill)` on an RGB image; `matrix` is
 * (a, b, c, d, e, f), mapping output to input coordinates.
 */
export function affine(
  img: ImageU8,
  matrix: readonly number[],
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  const [a, b, c, d, e, f] = matrix;
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(W * H * 3);
  const stride = W * 3;
  const clampX = (x: number) => (x < 0 ? 0 : x < W ? x : W - 1);
  let o = 0;
  for (let y = 0; y < H; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < W; x++, o += 3) {
      const xc = x + 0.5;
      let xin = a * xc + b * yc + c;
      let yin = d * xc + e * yc + f;
      if (!(xin >= 0 && xin < W && yin >= 0 && yin < H)) {
        out[o] = fill[0];
        out[o + 1] = fill[1];
        out[o + 2] = fill[2];
        continue;
      }
      if (resample === "nearest") {
        const p = Math.trunc(yin) * stride + Math.trunc(xin) * 3;
        out[o] = data[p];
        out[o + 1] = data[p + 1];
        out[o + 2] = data[p + 2];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      const xi = Math.floor(xin);
      const yi = Math.floor(yin);
      const dx = xin - xi;
      const dy = yin - yi;
      if (resample === "bilinear") {
        const x0 = clampX(xi) * 3, x1 = clampX(xi + 1) * 3;
        const r0 = (yi < 0 ? 0 : yi < H ? yi : H - 1) * stride;
        const hasR1 = yi + 1 >= 0 && yi + 1 < H;
        const r1 = (yi + 1) * stride;
        for (let ch = 0; ch < 3; ch++) {
          const a0 = data[r0 + x0 + ch];
          const v1 = a0 + (data[r0 + x1 + ch] - a0) * dx;
          let v2 = v1;
          if (hasR1) {
            const a1 = data[r1 + x0 + ch];
            v2 = a1 + (data[r1 + x1 + ch] - a1) * dx;
          }
          out[o + ch] = Math.trunc(v1 + (v2 - v1) * dy);
        }
        continue;
      }
      // bicubic: 4x4 neighbourhood starting one pixel up-left of the floor
      const xs = xi - 1;
      const ys = yi - 1;
      const x0 = clampX(xs) * 3, x1 = clampX(xs + 1) * 3, x2 = clampX(xs + 2) * 3, x3 = clampX(xs + 3) * 3;
      const row0 = (ys < 0 ? 0 : ys < H ? ys : H - 1) * stride;
      const ok1 = ys + 1 >= 0 && ys + 1 < H;
      const ok2 = ys + 2 >= 0 && ys + 2 < H;
      const ok3 = ys + 3 >= 0 && ys + 3 < H;
      for (let ch = 0; ch < 3; ch++) {
        let r = row0 + ch;
        const v1 = cubic(data[r + x0], data[r + x1], data[r + x2], data[r + x3], dx);
        let v2 = v1;
        if (ok1) {
          r = (ys + 1) * stride + ch;
          v2 = cubic(data[r + x0], data[r + x1], data[r + x2], data[r + x3], dx);
        }
        let v3 = v2;
        if (ok2) {
          r = (ys + 2) * stride + ch;
          v3 = cubic(data[r + x0], data[r + x1], data[r + x2], data[r + x3], dx);
        }
        let v4 = v3;
        if (ok3) {
          r = (ys + 3) * stride + ch;
          v4 = cubic(data[r + x0], data[r + x1], data[r + x2], data[r + x3], dx);
        }
        const v = cubic(v1, v2, v3, v4, dy);
        out[o + ch] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
  }
  return image(W, H, out);
}

/** Python's `round(x, 15)` for |x| ≤ 1 (as Pillow's `rotate` rounds its matrix). */
function round15(x: number): number {
  return Number(x.toFixed(15));
}

/**
 * Pillow `Image.rotate(degrees, resample, fillcolor=fill)` (counter-clockwise, about the centre (W/2, H/2), no
 * expand), with its fast paths: 0° is a copy, 180° (and 90°/270° on square images) are exact pixel moves.
 */
export function rotate(
  img: ImageU8,
  degrees: number,
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  const angle = ((degrees % 360) + 360) % 360;
  const { width: W, height: H } = img;
  if (angle === 0) return image(W, H, img.data.slice());
  if (angle === 180 || ((angle === 90 || angle === 270) && W === H)) {
    const out = new Uint8Array(img.data.length);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        // output (x, y) comes from the input pixel rotated back
        let sx: number, sy: number;
        if (angle === 180) [sx, sy] = [W - 1 - x, H - 1 - y];
        else if (angle === 90) [sx, sy] = [W - 1 - y, x];
        else [sx, sy] = [y, H - 1 - x];
        const s = (sy * W + sx) * 3;
        const o = (y * W + x) * 3;
        out[o] = img.data[s];
        out[o + 1] = img.data[s + 1];
        out[o + 2] = img.data[s + 2];
      }
    }
    return image(W, H, out);
  }
  const rad = -(angle * Math.PI) / 180;
  const cx = W / 2, cy = H / 2;
  const m = [
    round15(Math.cos(rad)),
    round15(Math.sin(rad)),
    0,
    round15(-Math.sin(rad)),
    round15(Math.cos(rad)),
    0,
  ];
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  return affine(img, m, fill, resample);
}

/** timm `shear_x`: x_in = x + factor · y. */
export function shearX(
  img: ImageU8,
  factor: number,
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  return affine(img, [1, factor, 0, 0, 1, 0], fill, resample);
}

/** timm `shear_y`: y_in = factor · x + y. */
export function shearY(
  img: ImageU8,
  factor: number,
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  return affine(img, [1, 0, 0, factor, 1, 0], fill, resample);
}

/** timm `translate_x_abs`: x_in = x + pixels (so the content moves left for pixels > 0). */
export function translateX(
  img: ImageU8,
  pixels: number,
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  return affine(img, [1, 0, pixels, 0, 1, 0], fill, resample);
}

/** timm `translate_y_abs`: y_in = y + pixels. */
export function translateY(
  img: ImageU8,
  pixels: number,
  fill: Rgb,
  resample: AffineResample = "bicubic",
): ImageU8 {
  return affine(img, [1, 0, 0, 0, 1, pixels], fill, resample);
}
