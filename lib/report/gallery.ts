/**
 * What DeiT's augmentations do to an image, as rows of pictures for the walkthrough: the same images through
 * the small-image crop + flip, RandAugment (rand-m9-mstd0.5-inc1), random erasing, Mixup and CutMix — each
 * made by the very functions the training loader calls, with a fixed seed.
 */
import type { Dataset, ImageF32, ImageU8 } from "../data/dataset.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/image.ts";
import { cutmixBboxAndLam, sampleBeta } from "../data/mixup.ts";
import {
  meanFill,
  normalize,
  parseRandAugment,
  randAugment,
  randomCrop,
  randomErasing,
  randomHorizontalFlip,
} from "../data/transforms/mod.ts";
import { Rng } from "../base/rng.ts";

/** Undo the normalisation for display (values clamped to 0–255). */
export function denormalize(img: ImageF32): ImageU8 {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < img.data.length; i++) {
    const c = i % 3;
    out[i] = Math.max(0, Math.min(255, Math.round((img.data[i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255)));
  }
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

export interface GalleryRow {
  name: string;
  images: ImageU8[];
}

/**
 * Rows of `n` augmented versions of the dataset's first `n` images (28-px Fashion-MNIST here): original;
 * crop (padding 4) + flip; RandAugment; random erasing (p = 1 to show it); Mixup (λ ~ Beta(0.8, 0.8)) and CutMix
 * (λ ~ Beta(1, 1), box corrected) with the images of the batch in reverse order, as timm mixes.
 */
export async function augmentationGallery(data: Dataset, n = 8, seed = 0): Promise<GalleryRow[]> {
  const originals: ImageU8[] = [];
  for (let i = 0; i < n; i++) originals.push((await data.get(i)).image);
  const size = originals[0].width;
  const rng = new Rng(seed);
  const ra = parseRandAugment("rand-m9-mstd0.5-inc1");
  const hp = {
    fill: meanFill(IMAGENET_MEAN),
    resample: "bicubic" as const,
    translateConst: Math.trunc(size * 0.45),
  };
  const cropped = originals.map((img) => randomHorizontalFlip(randomCrop(img, rng, size, 4), rng));
  const randAug = originals.map((img) => randAugment(img, rng, ra, hp));
  const erased = originals.map((img) => {
    const f = normalize(img);
    randomErasing(f, rng, { probability: 1, mode: "pixel", minCount: 1, maxCount: 1 });
    return denormalize(f);
  });
  const mix = (i: number, kind: "mixup" | "cutmix"): ImageU8 => {
    const a = originals[i], b = originals[n - 1 - i];
    const out = new Uint8Array(a.data);
    if (kind === "mixup") {
      const lam = sampleBeta(rng, 0.8, 0.8);
      for (let k = 0; k < out.length; k++) out[k] = Math.round(lam * a.data[k] + (1 - lam) * b.data[k]);
    } else {
      const { box } = cutmixBboxAndLam(rng, size, size, sampleBeta(rng, 1, 1));
      for (let y = box.yl; y < box.yh; y++) {
        for (let x = box.xl; x < box.xh; x++) {
          for (let c = 0; c < 3; c++) out[(y * size + x) * 3 + c] = b.data[(y * size + x) * 3 + c];
        }
      }
    }
    return { data: out, width: size, height: size, channels: 3 };
  };
  return [
    { name: "original", images: originals },
    { name: "random crop (padding 4) + flip", images: cropped },
    { name: "RandAugment rand-m9-mstd0.5-inc1", images: randAug },
    { name: "random erasing (shown with p = 1)", images: erased },
    { name: "Mixup (with the reversed batch)", images: originals.map((_, i) => mix(i, "mixup")) },
    { name: "CutMix (with the reversed batch)", images: originals.map((_, i) => mix(i, "cutmix")) },
  ];
}
