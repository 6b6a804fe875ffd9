/**
 * `deno task bench:data`: throughput of DeiT's training input pipeline (decode JPEG → RandomResizedCrop 224 →
 * flip → RandAugment rand-m9-mstd0.5-inc1 → normalise → random erasing, through lib/data/train_loader.ts), with
 * 0 (inline), 1 and N augmentation Workers, plus a per-step cost breakdown on the main thread. Each setting runs
 * a warm-up epoch, then `--epochs` timed epochs; the figure is the median epoch's images/s.
 *
 * The images are written first: `--images` (64) random-content 500×375 JPEGs (ImageNet's typical size: smooth
 * random colour fields plus noise, quality 90) as an ImageFolder in a temporary folder, removed afterwards.
 *
 *   deno task bench:data [--images 64] [--batch 16] [--workers 0,1,2] [--epochs 5] [--size 224]
 *                        [--resampler auto|pil|sharp] [--json]
 */
import sharp from "sharp";
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { machineLine } from "../lib/base/machine.ts";
import { Rng } from "../lib/base/rng.ts";
import type { Dataset, ImageU8 } from "../lib/data/dataset.ts";
import { imageFolderDataset } from "../lib/data/datasets/mod.ts";
import { ShuffleSampler } from "../lib/data/sampler.ts";
import { TrainLoader } from "../lib/data/train_loader.ts";
import {
  DEIT_RAND_AUGMENT,
  normalize,
  parseRandAugment,
  randAugment,
  randomErasing,
  randomHorizontalFlip,
  randomResizedCrop,
  type TrainResampler,
} from "../lib/data/transforms/mod.ts";

const USAGE = "usage: deno task bench:data [--images 64] [--batch 16] [--workers 0,1,2] [--epochs 5] " +
  "[--size 224] [--resampler auto|pil|sharp] [--json]";
const WIDTH = 500, HEIGHT = 375, CLASSES = 4;

/** Writes `n` JPEGs as `dir/c<k>/<i>.jpg`: a bicubic-upsampled random 8×6 colour grid plus ±12 noise. */
async function writeJpegs(dir: string, n: number): Promise<void> {
  const rng = new Rng(2024);
  for (let k = 0; k < CLASSES; k++) await Deno.mkdir(`${dir}/c${k}`, { recursive: true });
  for (let i = 0; i < n; i++) {
    const grid = new Uint8Array(8 * 6 * 3);
    for (let j = 0; j < grid.length; j++) grid[j] = rng.int(256);
    const smooth = await sharp(grid, { raw: { width: 8, height: 6, channels: 3 } })
      .resize(WIDTH, HEIGHT, { kernel: "cubic", fit: "fill" }).raw().toBuffer();
    const px = new Uint8Array(smooth.buffer, smooth.byteOffset, smooth.length);
    for (let j = 0; j < px.length; j++) px[j] = Math.max(0, Math.min(255, px[j] + rng.int(25) - 12));
    const jpeg = await sharp(px, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality: 90 })
      .toBuffer();
    await Deno.writeFile(`${dir}/c${i % CLASSES}/${String(i).padStart(4, "0")}.jpg`, jpeg);
  }
}

/** Mean milliseconds per image of each step, on the main thread (sequential, no overlap; after a warm-up pass). */
async function breakdown(ds: Dataset, size: number): Promise<Record<string, number>> {
  const n = Math.min(ds.length, 32);
  const ra = parseRandAugment(DEIT_RAND_AUGMENT);
  const keys = ["decode", "rrcPil", "rrcSharp", "rrcAuto", "flip", "randAugment", "normErase"];
  const t: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
  for (const timed of [false, true]) {
    const time = async <T>(key: string, f: () => T | Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await f();
      if (timed) t[key] += performance.now() - t0;
      return r;
    };
    for (let i = 0; i < n; i++) {
      const { image } = await time("decode", () => ds.get(i));
      const rng = new Rng(i);
      const state = rng.state;
      await time("rrcSharp", () => randomResizedCrop(image, rng, { size, resampler: "sharp" }));
      rng.state = state;
      await time("rrcAuto", () => randomResizedCrop(image, rng, { size, resampler: "auto" }));
      rng.state = state;
      let img: ImageU8 = await time(
        "rrcPil",
        () => randomResizedCrop(image, rng, { size, resampler: "pil" }),
      );
      img = await time("flip", () => randomHorizontalFlip(img, rng));
      img = await time("randAugment", () => randAugment(img, rng, ra));
      await time("normErase", () => randomErasing(normalize(img), rng, { probability: 0.25, mode: "pixel" }));
    }
  }
  for (const k of keys) t[k] = Number((t[k] / n).toFixed(2));
  return t;
}

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["images", "batch", "workers", "epochs", "size", "resampler"],
    boolean: ["json"],
    default: {
      images: "64",
      batch: "16",
      workers: `0,1,${navigator.hardwareConcurrency}`,
      epochs: "5",
      size: "224",
    },
  }, USAGE);
  const images = intFlag(a.images, "images");
  const batch = intFlag(a.batch, "batch");
  const epochs = intFlag(a.epochs, "epochs");
  const size = intFlag(a.size, "size");
  const resampler = (a.resampler ?? "auto") as TrainResampler;
  if (!["pil", "sharp", "auto"].includes(resampler)) {
    throw new UsageError(`--resampler must be auto, pil or sharp`);
  }
  const workerCounts = [...new Set(String(a.workers).split(",").map((w) => Number(w.trim())))];
  if (workerCounts.some((w) => !Number.isInteger(w) || w < 0)) {
    throw new UsageError(`--workers takes counts >= 0, e.g. 0,1,2`);
  }
  if (batch > images) throw new UsageError(`--batch ${batch} is larger than --images ${images}`);

  const dir = await Deno.makeTempDir({ prefix: "bench_data_" });
  try {
    await writeJpegs(dir, images);
    const ds = await imageFolderDataset(dir);
    const steps = await breakdown(ds, size);
    const runs: { workers: number; imagesPerSec: number; epochRates: number[]; images: number }[] = [];
    for (const workers of workerCounts) {
      await using loader = new TrainLoader({
        dataset: ds,
        transform: { size, resampler },
        sampler: new ShuffleSampler({ size: ds.length, seed: 1 }),
        batchSize: batch,
        seed: 1,
        workers,
        prefetch: 1,
        mixup: { numClasses: CLASSES },
      });
      for await (const _ of loader.epoch()) { /* warm-up epoch: Worker start, JIT */ }
      const epochRates: number[] = [];
      let count = 0;
      for (let e = 0; e < epochs; e++) {
        let n = 0;
        const t0 = performance.now();
        for await (const b of loader.epoch()) n += b.labels.length;
        epochRates.push(Number((n / ((performance.now() - t0) / 1000)).toFixed(1)));
        count += n;
      }
      // the median epoch: robust to other processes on a shared machine
      const median = [...epochRates].sort((x, y) => x - y)[Math.floor(epochRates.length / 2)];
      runs.push({ workers, imagesPerSec: median, epochRates, images: count });
    }
    const machine = await machineLine();
    const result = {
      bench: "data",
      date: new Date().toISOString(),
      machine,
      pipeline: `decode ${WIDTH}x${HEIGHT} JPEG, RRC ${size} (${resampler}), flip, ${DEIT_RAND_AUGMENT}, ` +
        `normalize, erasing 0.25 pixel, mixup/cutmix`,
      batch,
      runs,
      msPerImage: steps,
    };
    if (a.json) {
      console.log(JSON.stringify(result));
    } else {
      const per = runs.map((r) =>
        `${r.workers} worker${r.workers === 1 ? "" : "s"}: ${r.imagesPerSec} img/s`
      );
      const st = Object.entries(steps).map(([k, v]) => `${k} ${v}`).join(", ");
      console.log(
        `bench:data ${result.pipeline} — ${per.join(", ")} (ms/image on main thread: ${st}) [${machine}]`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
