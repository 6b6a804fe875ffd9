/**
 * Tests for DeiT's training augmentations (lib/data/transforms*), Mixup/CutMix (lib/data/mixup.ts) and the
 * samplers (lib/data/sampler.ts). Images are small synthetic ones; Pillow semantics are checked against values
 * computed by hand from Pillow's C code.
 */
import { assert, assertAlmostEquals, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { Rng } from "../lib/base/rng.ts";
import type { ImageF32, ImageU8 } from "../lib/data/dataset.ts";
import {
  affine,
  applyOpAtMagnitude,
  autocontrast,
  blend,
  buildTrainTransform,
  colorJitter,
  crop,
  DEIT_RAND_AUGMENT,
  deriveSeed,
  enhanceBrightness,
  enhanceColor,
  enhanceContrast,
  enhanceSharpness,
  equalize,
  type ErasedBox,
  hflip,
  histogram,
  image,
  invert,
  levelToArg,
  meanFill,
  normalize,
  parseRandAugment,
  pickResampler,
  posterize,
  RAND_INCREASING_OPS,
  randAugment,
  type RandAugmentTrace,
  randomCrop,
  randomErasing,
  randomHorizontalFlip,
  randomResizedCrop,
  resize,
  rotate,
  rrcFallback,
  rrcParams,
  shearX,
  shearY,
  smooth,
  solarize,
  solarizeAdd,
  toGrey,
  trainTransformSteps,
  translateX,
  translateY,
} from "../lib/data/transforms/mod.ts";
import { cutmixBboxAndLam, Mixup, mixupTarget, sampleBeta, sampleGamma } from "../lib/data/mixup.ts";
import { RepeatedAugSampler, ShuffleSampler } from "../lib/data/sampler.ts";

// ---------------------------------------------------------------------------------------------------- helpers

/** Deterministic pseudo-random RGB image. */
function noiseImage(width: number, height: number, seed: number): ImageU8 {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return image(width, height, data);
}

/** A smooth image (gradients), so geometric ops change it measurably but not chaotically. */
function gradientImage(width: number, height: number): ImageU8 {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = Math.round((255 * x) / Math.max(1, width - 1));
      data[o + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[o + 2] = (x * 7 + y * 3) % 256;
    }
  }
  return image(width, height, data);
}

/** Grey image from per-pixel values. */
function greyImage(width: number, height: number, values: ArrayLike<number>): ImageU8 {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = values[p];
  return image(width, height, data);
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

function pixel(img: ImageU8, x: number, y: number): number[] {
  const o = (y * img.width + x) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

const FIXTURES = new URL("../../shared/fixtures/reference/", import.meta.url);

// ---------------------------------------------------------------------------------------------------- geometry

Deno.test("crop copies the window and zero-fills outside the image (PIL crop)", () => {
  const img = noiseImage(10, 8, 1);
  const c = crop(img, 2, 3, 4, 5);
  assertEquals([c.width, c.height], [5, 4]);
  assertEquals(pixel(c, 0, 0), pixel(img, 3, 2));
  assertEquals(pixel(c, 4, 3), pixel(img, 7, 5));
  const out = crop(img, -1, -1, 3, 3);
  assertEquals(pixel(out, 0, 0), [0, 0, 0]);
  assertEquals(pixel(out, 1, 1), pixel(img, 0, 0));
});

Deno.test("rrcParams: boxes inside the image, area and ratio in range, reproducible", () => {
  const rng = new Rng(7);
  const W = 500, H = 375;
  let fallbacks = 0;
  for (let i = 0; i < 500; i++) {
    const b = rrcParams(rng, W, H);
    assert(b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W, JSON.stringify(b));
    const area = (b.width * b.height) / (W * H);
    const ratio = b.width / b.height;
    if (b.width === W && b.height === H) fallbacks++;
    // rounding of w and h moves area and ratio a little outside the sampled ranges
    assert(area > 0.07 && area <= 1, `area ${area}`);
    assert(ratio > 0.7 && ratio < 1.4, `ratio ${ratio}`);
  }
  assert(fallbacks < 25);
  assertEquals(rrcParams(new Rng(3), W, H), rrcParams(new Rng(3), W, H));
});

Deno.test("rrcParams falls back to timm's centre crop clamped to the ratio range", () => {
  // 1000x10: any crop of ≥ 8% of the area needs w/h ≥ 8, outside [3/4, 4/3], so all 10 tries fail
  const wide = rrcParams(new Rng(1), 1000, 10);
  assertEquals(wide, { top: 0, left: 493, height: 10, width: 13 }); // w = round(10 · 4/3) = 13, left = 987 // 2
  assertEquals(rrcFallback(10, 1000), { top: 493, left: 0, height: 13, width: 10 }); // h = round(10 / (3/4))
  assertEquals(rrcFallback(40, 36), { top: 0, left: 0, height: 36, width: 40 }); // ratio inside: whole image
});

Deno.test("randomResizedCrop gives size x size with both resamplers; PIL path is deterministic", async () => {
  const img = gradientImage(50, 38);
  const a = await randomResizedCrop(img, new Rng(5), { size: 24 });
  const b = await randomResizedCrop(img, new Rng(5), { size: 24 });
  assertEquals([a.width, a.height, a.data.length], [24, 24, 24 * 24 * 3]);
  assertEquals(a.data, b.data);
  const s = await randomResizedCrop(img, new Rng(5), { size: 24, resampler: "sharp" });
  assertEquals([s.width, s.height], [24, 24]);
  assert(meanAbsDiff(a.data, s.data) < 4, "sharp's cubic stays close to Pillow's on a smooth image");
  const c = await randomResizedCrop(img, new Rng(6), { size: 24 });
  assertNotEquals(a.data, c.data);
});

Deno.test("resize 'auto' picks the Pillow port for tiny outputs and upscaling, sharp for downscaling", () => {
  assertEquals(pickResampler(40, 30, 24, 24), "pil");
  assertEquals(pickResampler(150, 120, 224, 224), "pil");
  assertEquals(pickResampler(300, 260, 224, 224), "sharp");
  assertEquals(pickResampler(230, 100, 224, 224), "sharp");
});

Deno.test("hflip mirrors; randomHorizontalFlip follows p", () => {
  const img = noiseImage(7, 3, 2);
  const f = hflip(img);
  assertEquals(pixel(f, 0, 1), pixel(img, 6, 1));
  assertEquals(hflip(f).data, img.data);
  assertEquals(randomHorizontalFlip(img, new Rng(1), 0).data, img.data);
  assertEquals(randomHorizontalFlip(img, new Rng(1), 1).data, f.data);
  let flips = 0;
  const rng = new Rng(9);
  for (let i = 0; i < 1000; i++) if (randomHorizontalFlip(img, rng) !== img) flips++;
  assert(flips > 430 && flips < 570, `${flips} flips of 1000`);
});

Deno.test("randomCrop (small-image rule): 32x32 from a zero-padded 40x40", () => {
  const img = greyImage(32, 32, new Array(32 * 32).fill(200));
  const offsets = new Set<string>();
  for (let s = 0; s < 200; s++) {
    const c = randomCrop(img, new Rng(s), 32, 4);
    assertEquals([c.width, c.height], [32, 32]);
    // the non-zero part is a (32 − |dy|) x (32 − |dx|) rectangle, |dx|, |dy| ≤ 4
    let rows = 0, cols = 0;
    for (let y = 0; y < 32; y++) {
      if (c.data[(y * 32 + 16) * 3] === 0 && c.data[(y * 32 + 0) * 3] === 0) rows++;
    }
    for (let x = 0; x < 32; x++) if (c.data[(16 * 32 + x) * 3] === 0 && c.data[x * 3] === 0) cols++;
    assert(rows <= 4 && cols <= 4, `${rows} zero rows, ${cols} zero columns`);
    let nonZero = 0;
    for (let i = 0; i < c.data.length; i += 3) if (c.data[i]) nonZero++;
    assertEquals(nonZero, (32 - rows) * (32 - cols));
    offsets.add(`${rows},${cols}`);
  }
  assert(offsets.size > 10, "offsets vary");
});

Deno.test("affine (Pillow bicubic, a = -1): integer shifts are exact, half-pixel values hand-computed", () => {
  const img = noiseImage(9, 5, 3);
  const fill = [1, 2, 3] as const;
  const t = translateX(img, 2, fill);
  for (let x = 0; x < 7; x++) assertEquals(pixel(t, x, 2), pixel(img, x + 2, 2));
  assertEquals(pixel(t, 7, 0), [1, 2, 3]);
  assertEquals(pixel(t, 8, 4), [1, 2, 3]);
  assertEquals(shearX(img, 0, fill).data, img.data);
  // a spike of 100 in a zero row, sampled half a pixel right: 0.625 · 100 (the a = −1 kernel at 0.5) → 62
  const row = new Array(8 * 1).fill(0);
  row[4] = 100;
  const spike = greyImage(8, 1, row);
  const half = translateX(spike, 0.5, [0, 0, 0]);
  // output x samples the input half-way between x and x + 1 (d = 0.5)
  assertEquals(pixel(half, 3, 0)[0], 62); // (v1..v4) = (0, 0, 100, 0) → 62.5
  assertEquals(pixel(half, 4, 0)[0], 62); // (0, 100, 0, 0) → 62.5
  assertEquals(pixel(half, 2, 0)[0], 0); // (0, 0, 0, 100) → −12.5, clamped
  assertEquals(pixel(half, 5, 0)[0], 0); // (100, 0, 0, 0) → −12.5, clamped
  assertEquals(pixel(half, 7, 0)[0], 0); // samples x = 8: outside, fill
});

Deno.test("rotate: 0° copies, 90°/180° fast paths equal the general affine path", () => {
  const img = noiseImage(6, 6, 4);
  const fill = [0, 0, 0] as const;
  assertEquals(rotate(img, 0, fill).data, img.data);
  const r180 = rotate(img, 180, fill);
  assertEquals(pixel(r180, 0, 0), pixel(img, 5, 5));
  // Pillow's matrix for 90° (cos 0, sin −1 after rounding) hits pixel centres exactly
  const m90 = [0, -1, 6, 1, 0, 0];
  assertEquals(rotate(img, 90, fill).data, affine(img, m90, fill).data);
  const r = rotate(gradientImage(20, 16), 27, [124, 116, 104]);
  assertEquals([r.width, r.height], [20, 16]);
  assertEquals(pixel(r, 0, 0), [124, 116, 104], "corner uncovered after a 27° turn");
});

// ---------------------------------------------------------------------------------------------------- pixel ops

Deno.test("autocontrast stretches each channel to 0–255 (Pillow's int() mapping)", () => {
  // lo 0, hi 51: scale 5 exactly
  const exact = greyImage(3, 1, [0, 25, 51]);
  assertEquals(Array.from(autocontrast(exact).data.filter((_, i) => i % 3 === 0)), [0, 125, 255]);
  // lo 50, hi 100: Pillow's float arithmetic (100 · 5.1 − 254.99999999999997) truncates the top value to 254
  const img = greyImage(3, 1, [50, 75, 100]);
  assertEquals(Array.from(autocontrast(img).data.filter((_, i) => i % 3 === 0)), [0, 127, 254]);
  const flat = greyImage(2, 1, [9, 9]);
  assertEquals(autocontrast(flat).data, flat.data);
});

Deno.test("equalize: hand-computed lut, and it flattens the histogram", () => {
  // 4 values x 100 px: step = (400 − 100) // 255 = 1, lut[v] = # pixels below v → 0, 100, 200, 300→255
  const vals = [
    ...new Array(100).fill(10),
    ...new Array(100).fill(20),
    ...new Array(100).fill(30),
    ...new Array(100).fill(40),
  ];
  const out = equalize(greyImage(20, 20, vals));
  assertEquals(new Set(out.data), new Set([0, 100, 200, 255]));
  // a dark, narrow histogram spreads out
  const dark = noiseImage(64, 64, 5);
  for (let i = 0; i < dark.data.length; i++) dark.data[i] = 60 + (dark.data[i] >> 4);
  const eq = equalize(dark);
  const h = histogram(eq);
  let lo = 255, hi = 0;
  for (let v = 0; v < 256; v++) if (h[v]) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  assert(lo < 20 && hi > 230, `range ${lo}..${hi}`);
});

Deno.test("posterize, invert, solarize, solarizeAdd: Pillow lookup tables", () => {
  const img = greyImage(4, 1, [0, 100, 200, 0b11011010]);
  const g = (im: ImageU8) => Array.from(im.data.filter((_, i) => i % 3 === 0));
  assertEquals(g(posterize(img, 1)), [0, 0, 128, 128]);
  assertEquals(g(posterize(img, 3)), [0, 96, 192, 0b11000000]);
  assertEquals(g(posterize(img, 0)), [0, 0, 0, 0]);
  assertEquals(g(posterize(img, 8)), [0, 100, 200, 218]);
  assertEquals(g(invert(img)), [255, 155, 55, 37]);
  assertEquals(g(solarize(img, 128)), [0, 100, 55, 37]);
  assertEquals(g(solarize(img, 256)), [0, 100, 200, 218]);
  assertEquals(g(solarizeAdd(img, 50)), [50, 150, 200, 218]);
});

Deno.test("ImageEnhance: grey conversion, blend truncation, contrast mean, sharpness kernel", () => {
  const red = image(1, 1, new Uint8Array([255, 0, 0]));
  assertEquals(toGrey(red)[0], 76); // (255 · 19595 + 32768) >> 16
  assertEquals(Array.from(enhanceColor(red, 0).data), [76, 76, 76]);
  assertEquals(Array.from(enhanceColor(red, 1).data), [255, 0, 0]);
  const g = greyImage(3, 1, [201, 100, 200]);
  assertEquals(Array.from(enhanceBrightness(g, 0.5).data.filter((_, i) => i % 3 === 0)), [100, 50, 100]);
  assertEquals(Array.from(enhanceBrightness(g, 1.5).data.filter((_, i) => i % 3 === 0)), [255, 150, 255]);
  // contrast: mean of L = (0 + 255) / 2 → int(127.5 + 0.5) = 128; factor 0 gives the mean everywhere
  const bw = greyImage(2, 1, [0, 255]);
  assertEquals(Array.from(enhanceContrast(bw, 0).data), [128, 128, 128, 128, 128, 128]);
  assertEquals(Array.from(blend(10, bw, 2).data.filter((_, i) => i % 3 === 0)), [0, 255]); // extrapolation clamps
  // SMOOTH: a lone 255 in the middle of a 5x5 black image → centre 5·255/13 = 98.08 → 98, neighbours 19.6 → 20
  const dot = new Array(25).fill(0);
  dot[12] = 255;
  const sm = smooth(greyImage(5, 5, dot));
  assertEquals(sm[12 * 3], 98);
  assertEquals(sm[11 * 3], 20);
  assertEquals(sm[0], 0);
  const img = noiseImage(8, 8, 6);
  assertEquals(enhanceSharpness(img, 1).data, img.data);
  // border pixels are not filtered
  assertEquals(pixel(enhanceSharpness(img, 0), 0, 3), pixel(img, 0, 3));
});

Deno.test("colorJitter: factors within ±j, reproducible, identity at j = 0", () => {
  const img = gradientImage(16, 16);
  const a = colorJitter(img, new Rng(1), { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
  const b = colorJitter(img, new Rng(1), { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
  assertEquals(a.data, b.data);
  assertNotEquals(a.data, img.data);
  assertEquals(colorJitter(img, new Rng(1), {}).data, img.data);
});

// ---------------------------------------------------------------------------------------------------- Pillow

/**
 * FNV-1a hashes of Pillow 9.4.0's output bytes for each op on the 13x9 image of {@link pillowTestImage}
 * (`Image.frombytes("RGB", (13, 9), bytes(...))`, fill (124, 116, 104), BICUBIC unless named), computed with
 * Debian's python3-pil: ImageOps.*, ImageEnhance.*(img).enhance(f), img.rotate(deg, resample, fillcolor),
 * img.transform(size, AFFINE, (1, 0.27, 0, 0, 1, 0), ...) and img.resize(size, BICUBIC).
 */
const PILLOW_HASHES: Record<string, number> = {
  "autocontrast": 0xac0e7bb2,
  "equalize": 0x4f7ced31,
  "invert": 0x1517fd16,
  "posterize1": 0xf895d1c7,
  "posterize3": 0xccfc7a87,
  "solarize26": 0x63247403,
  "solarizeAdd99": 0x9cbaed36,
  "color1.81": 0xd1f6bda0,
  "color0.19": 0x3a775c73,
  "contrast1.81": 0x168c11fb,
  "contrast0.19": 0x5f8591d3,
  "brightness1.81": 0x5c2eb35b,
  "brightness0.37": 0x63057123,
  "sharpness1.81": 0x24846000,
  "sharpness0.19": 0x9015fe77,
  "rotate27": 0x20b161b0,
  "rotate-13.7": 0x7dcd4b10,
  "shearX0.27": 0xd256de79,
  "shearY-0.27": 0xace2356c,
  "translateX0.405": 0x9f2cdc41,
  "translateY-0.405": 0x8057efe8,
  "shearX0.27bilinear": 0xecaa5e6d,
  "rotate27bilinear": 0xbf7c55ad,
  "rotate27nearest": 0x820f24ac,
  "resize7x5": 0x99b08618,
  "resize24x24": 0x5abf7050,
};

/** byte i = (37 i + 11 (i // 7) + i² mod 13) mod 256, 13x9 RGB. */
function pillowTestImage(): ImageU8 {
  const data = new Uint8Array(13 * 9 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + Math.floor(i / 7) * 11 + (i * i) % 13) % 256;
  return image(13, 9, data);
}

function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

Deno.test("every op gives Pillow's exact bytes (hashes of Pillow 9.4.0 output)", async () => {
  const img = pillowTestImage();
  const fill = [124, 116, 104] as const;
  const ops: Record<string, () => ImageU8 | Promise<ImageU8>> = {
    "autocontrast": () => autocontrast(img),
    "equalize": () => equalize(img),
    "invert": () => invert(img),
    "posterize1": () => posterize(img, 1),
    "posterize3": () => posterize(img, 3),
    "solarize26": () => solarize(img, 26),
    "solarizeAdd99": () => solarizeAdd(img, 99),
    "color1.81": () => enhanceColor(img, 1.81),
    "color0.19": () => enhanceColor(img, 0.19),
    "contrast1.81": () => enhanceContrast(img, 1.81),
    "contrast0.19": () => enhanceContrast(img, 0.19),
    "brightness1.81": () => enhanceBrightness(img, 1.81),
    "brightness0.37": () => enhanceBrightness(img, 0.37),
    "sharpness1.81": () => enhanceSharpness(img, 1.81),
    "sharpness0.19": () => enhanceSharpness(img, 0.19),
    "rotate27": () => rotate(img, 27, fill),
    "rotate-13.7": () => rotate(img, -13.7, fill),
    "shearX0.27": () => shearX(img, 0.27, fill),
    "shearY-0.27": () => shearY(img, -0.27, fill),
    "translateX0.405": () => translateX(img, 0.405 * 13, fill),
    "translateY-0.405": () => translateY(img, -0.405 * 9, fill),
    "shearX0.27bilinear": () => shearX(img, 0.27, fill, "bilinear"),
    "rotate27bilinear": () => rotate(img, 27, fill, "bilinear"),
    "rotate27nearest": () => rotate(img, 27, fill, "nearest"),
    "resize7x5": () => resize(img, 7, 5),
    "resize24x24": () => resize(img, 24, 24),
  };
  assertEquals(Object.keys(ops).sort(), Object.keys(PILLOW_HASHES).sort());
  for (const [name, op] of Object.entries(ops)) {
    assertEquals(fnv1a((await op()).data).toString(16), PILLOW_HASHES[name].toString(16), name);
  }
});

// ---------------------------------------------------------------------------------------------------- RandAugment

Deno.test("parseRandAugment: DeiT's rand-m9-mstd0.5-inc1", () => {
  const c = parseRandAugment(DEIT_RAND_AUGMENT);
  assertEquals(c.magnitude, 9);
  assertEquals(c.magnitudeStd, 0.5);
  assertEquals(c.numLayers, 2);
  assertEquals(c.prob, 0.5);
  assertEquals(c.magnitudeMax, 10);
  assertEquals(c.ops, RAND_INCREASING_OPS);
  assertEquals(c.ops.length, 15);
  assertEquals(parseRandAugment("rand-m5-n3-mstd101").magnitudeStd, Infinity);
  assertThrows(() => parseRandAugment("augmix-m5"));
  assertEquals(meanFill(), [124, 116, 104]);
});

Deno.test("levelToArg: timm's argument ranges at magnitude 9", () => {
  const rng = new Rng(1);
  assertEquals(levelToArg("SolarizeIncreasing", 9, rng), 256 - 230);
  assertEquals(levelToArg("PosterizeIncreasing", 9, rng), 1);
  assertEquals(levelToArg("SolarizeAdd", 9, rng), 99);
  assertEquals(levelToArg("Equalize", 9, rng), null);
  const signs = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const r = levelToArg("Rotate", 9, rng)!;
    assertAlmostEquals(Math.abs(r), 27, 1e-9);
    signs.add(Math.sign(r));
    const f = levelToArg("ContrastIncreasing", 9, rng)!;
    assert(Math.abs(f - 1.81) < 1e-9 || Math.abs(f - 0.19) < 1e-9, `${f}`);
    const s = levelToArg("ShearX", 10, rng)!;
    assertAlmostEquals(Math.abs(s), 0.3, 1e-12);
  }
  assertEquals(signs.size, 2);
});

Deno.test("RandAugment 'inc': solarize, posterize, contrast, colour change the image more at m9 than m2", () => {
  const img = gradientImage(32, 32);
  for (
    const op of [
      "SolarizeIncreasing",
      "PosterizeIncreasing",
      "ContrastIncreasing",
      "ColorIncreasing",
    ] as const
  ) {
    let d2 = 0, d9 = 0;
    for (let s = 0; s < 6; s++) {
      d2 += meanAbsDiff(applyOpAtMagnitude(img, op, 2, new Rng(s)).data, img.data);
      d9 += meanAbsDiff(applyOpAtMagnitude(img, op, 9, new Rng(s)).data, img.data);
    }
    assert(d9 > d2, `${op}: m9 ${d9.toFixed(2)} should exceed m2 ${d2.toFixed(2)}`);
  }
});

Deno.test("randAugment: 2 ops with replacement, p 0.5, magnitude ~ N(9, 0.5) clipped, reproducible", () => {
  const cfg = parseRandAugment(DEIT_RAND_AUGMENT);
  const img = gradientImage(24, 24);
  const rng = new Rng(11);
  const seen = new Set<string>();
  let applied = 0, total = 0, sum = 0;
  for (let i = 0; i < 400; i++) {
    const trace: RandAugmentTrace[] = [];
    const out = randAugment(img, rng, cfg, {}, trace);
    assertEquals(trace.length, 2);
    assertEquals([out.width, out.height], [24, 24]);
    for (const t of trace) {
      seen.add(t.op);
      total++;
      if (t.applied) {
        applied++;
        assert(t.magnitude! >= 0 && t.magnitude! <= 10);
        sum += t.magnitude!;
      }
    }
  }
  assertEquals(seen.size, 15);
  assert(applied / total > 0.44 && applied / total < 0.56, `apply rate ${applied / total}`);
  assertAlmostEquals(sum / applied, 9, 0.1);
  const a = randAugment(img, new Rng(4), cfg);
  const b = randAugment(img, new Rng(4), cfg);
  assertEquals(a.data, b.data);
});

// ---------------------------------------------------------------------------------------------------- float ops

Deno.test("normalize: (v/255 − mean)/std per channel, float32", () => {
  const img = image(1, 2, new Uint8Array([0, 128, 255, 255, 0, 0]));
  const out = normalize(img);
  assertEquals([out.width, out.height, out.data.length], [1, 2, 6]);
  assertAlmostEquals(out.data[0], -0.485 / 0.229, 1e-6);
  assertAlmostEquals(out.data[1], (128 / 255 - 0.456) / 0.224, 1e-6);
  assertAlmostEquals(out.data[2], (1 - 0.406) / 0.225, 1e-6);
  for (const v of out.data) assert(v >= -2.2 && v <= 2.7);
});

Deno.test("randomErasing: box area within timm's bounds, per-pixel N(0,1) inside, untouched outside", () => {
  const W = 64, H = 48;
  let erased = 0;
  for (let s = 0; s < 200; s++) {
    const img: ImageF32 = { data: new Float32Array(W * H * 3).fill(5), width: W, height: H, channels: 3 };
    const boxes: ErasedBox[] = [];
    randomErasing(img, new Rng(s), { probability: 1, mode: "pixel" }, boxes);
    if (boxes.length === 0) continue; // 10 failed tries is possible, rarely
    erased++;
    const b = boxes[0];
    const frac = (b.width * b.height) / (W * H);
    assert(frac > 0.015 && frac < 0.36, `area fraction ${frac}`);
    assert(b.width < W && b.height < H && b.top + b.height <= H && b.left + b.width <= W);
    let inside = 0, sum = 0, sq = 0, outsideChanged = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inBox = y >= b.top && y < b.top + b.height && x >= b.left && x < b.left + b.width;
        for (let c = 0; c < 3; c++) {
          const v = img.data[(y * W + x) * 3 + c];
          if (inBox) {
            inside++;
            sum += v;
            sq += v * v;
          } else if (v !== 5) outsideChanged++;
        }
      }
    }
    assertEquals(outsideChanged, 0);
    if (inside > 1000) {
      assertAlmostEquals(sum / inside, 0, 0.15);
      assertAlmostEquals(Math.sqrt(sq / inside), 1, 0.1);
    }
  }
  assert(erased > 190);
  const img: ImageF32 = { data: new Float32Array(30).fill(1), width: 5, height: 2, channels: 3 };
  randomErasing(img, new Rng(0), { probability: 0 });
  assert(img.data.every((v) => v === 1));
  // p 0.25: about a quarter of the images are erased
  let hits = 0;
  const rng = new Rng(2);
  for (let i = 0; i < 2000; i++) {
    const boxes: ErasedBox[] = [];
    randomErasing({ data: new Float32Array(16 * 16 * 3), width: 16, height: 16, channels: 3 }, rng, {
      probability: 0.25,
    }, boxes);
    hits += boxes.length;
  }
  assert(hits > 420 && hits < 580, `${hits} of 2000`);
});

// ---------------------------------------------------------------------------------------------------- pipeline

Deno.test("trainTransformSteps: DeiT order, colour jitter only without RandAugment, small-image rule", () => {
  assertEquals(trainTransformSteps({ size: 224 }), [
    "randomResizedCrop",
    "hflip",
    "randAugment",
    "normalize",
    "randomErasing",
  ]);
  assertEquals(trainTransformSteps({ size: 224, randAugment: null, reprob: 0 }), [
    "randomResizedCrop",
    "hflip",
    "colorJitter",
    "normalize",
  ]);
  assertEquals(trainTransformSteps({ size: 32 })[0], "randomCrop");
  assertEquals(trainTransformSteps({ size: 32, smallImage: false })[0], "randomResizedCrop");
});

Deno.test("buildTrainTransform: shape, finite values, same seed → same bytes, other seed → different", async () => {
  const t = buildTrainTransform({ size: 64 });
  const img = noiseImage(100, 75, 8);
  const a = await t(img, new Rng(deriveSeed(1, 2, 3)));
  const b = await t(img, new Rng(deriveSeed(1, 2, 3)));
  const c = await t(img, new Rng(deriveSeed(1, 2, 4)));
  assertEquals([a.width, a.height, a.data.length], [64, 64, 64 * 64 * 3]);
  assertEquals(new Uint8Array(a.data.buffer), new Uint8Array(b.data.buffer));
  assertNotEquals(new Uint8Array(a.data.buffer), new Uint8Array(c.data.buffer));
  assert(a.data.every((v) => Number.isFinite(v) && Math.abs(v) < 10));
  const small = buildTrainTransform({ size: 32 });
  const s = await small(noiseImage(32, 32, 9), new Rng(1));
  assertEquals([s.width, s.height], [32, 32]);
});

// ---------------------------------------------------------------------------------------------------- mixup

Deno.test("mixupTarget equals losses.json mixup_target (λ 0.7, smoothing 0.1, labels [3,0,7,3])", async () => {
  const ref = JSON.parse(await Deno.readTextFile(new URL("losses.json", FIXTURES)));
  const { labels, mixup_lam, smoothing, num_classes } = ref.inputs;
  const t = mixupTarget(Int32Array.from(labels), num_classes, mixup_lam, smoothing);
  const want = (ref.mixup_target as number[][]).flat();
  assertEquals(t.length, want.length);
  // bit-exact: torch computes in float32 with the scalars rounded to float32, as mixupTarget does
  assertEquals(Array.from(t), want.map(Math.fround));
});

Deno.test("sampleGamma / sampleBeta: means and variance (Beta(α, α) mean α/(2α))", () => {
  const rng = new Rng(42);
  const n = 20000;
  for (const [a, b] of [[0.8, 0.8], [1, 1], [2, 5]]) {
    let s = 0, s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = sampleBeta(rng, a, b);
      assert(x >= 0 && x <= 1);
      s += x;
      s2 += x * x;
    }
    const mean = s / n, v = s2 / n - mean * mean;
    assertAlmostEquals(mean, a / (a + b), 0.01, `Beta(${a}, ${b}) mean`);
    assertAlmostEquals(v, (a * b) / ((a + b) ** 2 * (a + b + 1)), 0.005, `Beta(${a}, ${b}) variance`);
  }
  let g = 0;
  for (let i = 0; i < n; i++) g += sampleGamma(rng, 0.5);
  assertAlmostEquals(g / n, 0.5, 0.02);
});

Deno.test("CutMix: partner's box pasted, λ corrected to the clipped box area", () => {
  const B = 4, H = 10, W = 12;
  const x = new Float32Array(B * H * W * 3);
  for (let i = 0; i < x.length; i++) x[i] = Math.floor(i / (H * W * 3)); // image b is all b
  const labels = Int32Array.from([0, 1, 2, 3]);
  const mix = new Mixup({ mixupAlpha: 0, cutmixAlpha: 1, numClasses: 4, labelSmoothing: 0 });
  let checked = 0;
  for (let s = 0; s < 30 && checked < 5; s++) {
    const xs = x.slice();
    const r = mix.apply(xs, labels, H, W, new Rng(s));
    if (r.mode !== "cutmix") continue;
    checked++;
    const { yl, yh, xl, xh } = r.box!;
    assertAlmostEquals(r.lam, 1 - ((yh - yl) * (xh - xl)) / (H * W), 1e-12);
    for (let b = 0; b < B; b++) {
      for (let y = 0; y < H; y++) {
        for (let xx = 0; xx < W; xx++) {
          const inBox = y >= yl && y < yh && xx >= xl && xx < xh;
          assertEquals(xs[((b * H + y) * W + xx) * 3], inBox ? B - 1 - b : b);
        }
      }
    }
    // targets: λ on the own label, 1 − λ on the partner's
    assertAlmostEquals(r.target[0 * 4 + 0], r.lam, 1e-6);
    assertAlmostEquals(r.target[0 * 4 + 3], 1 - r.lam, 1e-6);
  }
  assert(checked > 0);
  // the box helper: λ 0.75 on a 100x100 image → cut 50x50 before clipping
  const { box, lam } = cutmixBboxAndLam(new Rng(3), 100, 100, 0.75);
  assertAlmostEquals(lam, 1 - ((box.yh - box.yl) * (box.xh - box.xl)) / 1e4, 1e-12);
  assert(box.yh - box.yl <= 50 && box.xh - box.xl <= 50);
});

Deno.test("Mixup: λ·x + (1−λ)·flip(x), soft targets sum to 1, odd batch rejected", () => {
  const B = 4, n = 2 * 2 * 3;
  const x = new Float32Array(B * n);
  for (let i = 0; i < x.length; i++) x[i] = i % 7;
  const mix = new Mixup({ mixupAlpha: 0.8, cutmixAlpha: 0, numClasses: 5 });
  const xs = x.slice();
  const r = mix.apply(xs, Int32Array.from([0, 1, 2, 4]), 2, 2, new Rng(1));
  assertEquals(r.mode, "mixup");
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < n; k++) {
      assertAlmostEquals(xs[b * n + k], r.lam * x[b * n + k] + (1 - r.lam) * x[(B - 1 - b) * n + k], 1e-5);
    }
  }
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let k = 0; k < 5; k++) s += r.target[b * 5 + k];
    assertAlmostEquals(s, 1, 1e-6);
  }
  assertThrows(
    () => mix.apply(new Float32Array(3 * n), Int32Array.from([0, 1, 2]), 2, 2, new Rng(1)),
    RangeError,
  );
  // DeiT's settings pick CutMix about half the time
  const deit = new Mixup({ numClasses: 5 });
  let cut = 0;
  const rng = new Rng(5);
  for (let i = 0; i < 400; i++) if (deit.params(rng).cutmix) cut++;
  assert(cut > 160 && cut < 240, `${cut} CutMix of 400`);
});

// ---------------------------------------------------------------------------------------------------- samplers

function counts(arrays: Int32Array[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const a of arrays) for (const i of a) m.set(i, (m.get(i) ?? 0) + 1);
  return m;
}

Deno.test("RepeatedAugSampler: each index 3 times across ranks, copies on different ranks", () => {
  const R = 3, N = 30;
  const ranks = Array.from(
    { length: R },
    (_, r) => new RepeatedAugSampler({ size: N, numReplicas: R, rank: r, seed: 1 }),
  );
  // N < 256: the reference would give an empty epoch; here each rank keeps floor(N / R)
  assertEquals(ranks[0].length, 10);
  const lists = ranks.map((s) => s.indices(0));
  const c = counts(lists);
  assertEquals(c.size, 10); // N / 3 distinct images per epoch …
  for (const v of c.values()) assertEquals(v, 3); // … each seen 3 times
  for (let i = 0; i < 10; i++) assertEquals(new Set(lists.map((l) => l[i])).size, 1); // position i: one image, 3 ranks
  // one process: the three copies follow each other
  const one = new RepeatedAugSampler({ size: N, seed: 1 }).indices(0);
  assertEquals(one.length, 30);
  for (let i = 0; i < 30; i += 3) assertEquals([one[i + 1], one[i + 2]], [one[i], one[i]]);
  assertEquals(counts([one]).size, 10);
});

Deno.test("RepeatedAugSampler: epoch length rounded down to 256 like RASampler; reproducible per (seed, epoch)", () => {
  assertEquals(new RepeatedAugSampler({ size: 1000, numReplicas: 2 }).length, 384); // floor(768 / 2)
  assertEquals(new RepeatedAugSampler({ size: 1000 }).length, 768);
  assertEquals(new RepeatedAugSampler({ size: 1281167, numReplicas: 8 }).length, 160128);
  const s = new RepeatedAugSampler({ size: 600, numReplicas: 2, rank: 1, seed: 3 });
  assertEquals(s.indices(4), s.indices(4));
  assertEquals(
    new RepeatedAugSampler({ size: 600, numReplicas: 2, rank: 1, seed: 3 }).indices(4),
    s.indices(4),
  );
  assertNotEquals(s.indices(4), s.indices(5));
  assertNotEquals(
    new RepeatedAugSampler({ size: 600, numReplicas: 2, rank: 1, seed: 4 }).indices(4),
    s.indices(4),
  );
  for (const i of s.indices(0)) assert(i >= 0 && i < 600);
  const ordered = new RepeatedAugSampler({ size: 300, shuffle: false }).indices(0);
  assertEquals(Array.from(ordered.slice(0, 6)), [0, 0, 0, 1, 1, 1]);
});

Deno.test("ShuffleSampler: a permutation per epoch, split over ranks", () => {
  const s = new ShuffleSampler({ size: 50, seed: 2 });
  const e0 = s.indices(0);
  assertEquals([...e0].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assertEquals(s.indices(0), e0);
  assertNotEquals(s.indices(1), e0);
  const parts = [0, 1, 2].map((r) =>
    new ShuffleSampler({ size: 50, seed: 2, numReplicas: 3, rank: r }).indices(0)
  );
  assertEquals(parts[0].length, 17);
  assertEquals(counts(parts).size, 50);
});

Deno.test("small-image rule: an image smaller than the model's side is resized to it before the crop", async () => {
  const img = { data: new Uint8Array(8 * 8 * 3).fill(200), width: 8, height: 8, channels: 3 as const };
  const t = buildTrainTransform({ size: 28, randAugment: "", colorJitter: 0, reprob: 0, hflip: 0 });
  const out = await t(img, new Rng(1));
  assertEquals([out.height, out.width], [28, 28]);
  // A uniform 8×8 image stays uniform inside (the crop's padding may bring in zeros at one edge only).
  const centre = (14 * 28 + 14) * 3;
  assert(out.data.slice(centre, centre + 3).every((v) => v > 1));
});
