/**
 * The float end of the training transform: `ToTensor` + `Normalize` (uint8 → float32, torch's float32
 * arithmetic) and timm's `RandomErasing`, which works on the normalised image.
 */
import type { Rng } from "../../base/rng.ts";
import type { ImageF32, ImageU8 } from "../dataset.ts";
import { IMAGENET_MEAN, IMAGENET_STD, normalizeTable, pyRound } from "../image.ts";
import { fillStandardNormal, randint, uniform } from "./random.ts";

/** `ToTensor()` + `Normalize(mean, std)` into float32 HWC (into `out` when given). */
export function normalize(
  img: ImageU8,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
  out: Float32Array = new Float32Array(img.data.length),
): ImageF32 {
  if (out.length !== img.data.length) throw new RangeError(`output needs ${img.data.length} floats`);
  const lut = normalizeTable(mean, std);
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    out[i] = lut[d[i]];
    out[i + 1] = lut[256 + d[i + 1]];
    out[i + 2] = lut[512 + d[i + 2]];
  }
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

/** timm `RandomErasing` fill modes: "pixel" per-pixel N(0, 1), "rand" one N(0, 1) colour per box, "const" 0. */
export type EraseMode = "pixel" | "rand" | "const";

export interface RandomErasingOptions {
  /** Probability of erasing at all; DeiT 0.25. */
  probability: number;
  /** Box area range as a fraction of the image; default [0.02, 1/3]. */
  minArea?: number;
  maxArea?: number;
  /** Aspect (h/w) range, sampled log-uniformly; default [0.3, 1/0.3]. */
  minAspect?: number;
  maxAspect?: number;
  /** Default "pixel" (DeiT's `--remode pixel`; timm's own default is "const"). */
  mode?: EraseMode;
  /** Boxes per image: `minCount` … `maxCount` (uniform); default 1 (DeiT's `--recount 1`). */
  minCount?: number;
  maxCount?: number;
}

/** The boxes {@link randomErasing} filled (for tests and logging). */
export interface ErasedBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * timm `RandomErasing._erase` on one normalised HWC image, in place: with probability `probability`, for each of
 * `count` boxes, up to 10 tries of (area ~ U(minArea, maxArea) · H·W / count, aspect ~ exp U(log range)),
 * h = round(√(area·aspect)), w = round(√(area/aspect)), accepted when h < H and w < W, placed uniformly and
 * filled per `mode`. Returns the same image; `boxes`, when given, receives the filled boxes.
 */
export function randomErasing(
  img: ImageF32,
  rng: Rng,
  opts: RandomErasingOptions,
  boxes?: ErasedBox[],
): ImageF32 {
  if (rng.next() > opts.probability) return img;
  const { width: W, height: H, data } = img;
  const minArea = opts.minArea ?? 0.02;
  const maxArea = opts.maxArea ?? 1 / 3;
  const minAspect = opts.minAspect ?? 0.3;
  const maxAspect = opts.maxAspect ?? 1 / minAspect;
  const logLo = Math.log(minAspect), logHi = Math.log(maxAspect);
  const mode = opts.mode ?? "pixel";
  const minCount = opts.minCount ?? 1;
  const maxCount = opts.maxCount ?? minCount;
  const count = minCount === maxCount ? minCount : randint(rng, minCount, maxCount);
  const area = H * W;
  for (let k = 0; k < count; k++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = (uniform(rng, minArea, maxArea) * area) / count;
      const aspect = Math.exp(uniform(rng, logLo, logHi));
      const h = pyRound(Math.sqrt(target * aspect));
      const w = pyRound(Math.sqrt(target / aspect));
      if (!(w < W && h < H)) continue;
      const top = randint(rng, 0, H - h);
      const left = randint(rng, 0, W - w);
      let colour: Float32Array | null = null;
      if (mode === "rand") fillStandardNormal(rng, colour = new Float32Array(3));
      else if (mode === "const") colour = new Float32Array(3);
      for (let y = top; y < top + h; y++) {
        const start = (y * W + left) * 3;
        const end = start + w * 3;
        if (colour) { for (let i = start; i < end; i += 3) data.set(colour, i); }
        else fillStandardNormal(rng, data, start, end);
      }
      boxes?.push({ top, left, height: h, width: w });
      break;
    }
  }
  return img;
}
