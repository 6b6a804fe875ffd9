/**
 * Small grey-level datasets available as Debian packages, held in memory and replicated to 3 channels:
 * Fashion-MNIST (`dataset-fashion-mnist`) and scikit-learn's handwritten digits (`python3-sklearn`).
 */
import { gunzipSync } from "node:zlib";
import { DataError, type Dataset } from "../dataset.ts";
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, readFashionMnist } from "../formats/idx.ts";
import { Rng } from "../../base/rng.ts";
import { checkLabels, checkSplit, MemoryDataset, readBytes, statOrNull } from "./common.ts";

/**
 * One split of Fashion-MNIST ("train": 60,000 images, "test": 10,000), 28×28 grey replicated to RGB.
 *
 * @param dir the folder holding the (optionally gzipped) IDX files; default Debian's
 *   `/usr/share/datasets/fashion-mnist`.
 */
export async function fashionMnist(
  split: "train" | "test",
  dir: string = FASHION_MNIST_DIR,
): Promise<Dataset> {
  checkSplit("fashion-mnist", split, ["train", "test"] as const);
  const src = await readFashionMnist(split, dir);
  const labelFile = `${dir}/${split === "train" ? "train" : "t10k"}-labels-idx1-ubyte[.gz]`;
  checkLabels(src.labels, FASHION_MNIST_CLASSES.length, labelFile, "image");
  return new MemoryDataset(`fashion-mnist/${split}`, FASHION_MNIST_CLASSES, {
    pixels: src.images,
    n: src.n,
    height: src.h,
    width: src.w,
    channels: 1,
    labels: src.labels,
  });
}

/** Where Debian's python3-sklearn installs the digits data. */
export const DIGITS_PATH = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
export const DIGITS_CLASSES: readonly string[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/** Images in the test split of the full file (the rest, 1,297, are train). */
export const DIGITS_TEST_SIZE = 500;

export interface DigitsOptions {
  /** "train" (1,297 images), "test" (500) or "all" (1,797, file order). Default "train". */
  split?: "train" | "test" | "all";
  /** The `digits.csv(.gz)` file, or a folder holding `digits.csv.gz`; default {@link DIGITS_PATH}. */
  dir?: string;
  /** Seed of the split permutation; default 0. */
  seed?: number;
}

/**
 * The UCI handwritten digits as shipped with scikit-learn (`sklearn.datasets.load_digits`): 1,797 8×8 images.
 * Each line of the CSV holds the 64 pixel values (0–16, row-major) and then the label (0–9).
 *
 * Pixels are scaled to 0–255 as `Math.round(v * 255 / 16)` (16 → 255, 8 → 128) and replicated to RGB.
 *
 * Split: a Fisher–Yates shuffle of the line indices driven by `new Rng(seed)` (`j = rng.int(i + 1)` for
 * i = n−1 … 1); the first `n − round(n · 500 / 1797)` shuffled indices are train (1,297 for the full file), the
 * rest test (500). Each split then lists its images in file order. Deterministic for a given seed and file.
 *
 * @throws DataError naming the file when it is missing or a line is malformed.
 */
export async function digits(opts: DigitsOptions = {}): Promise<Dataset> {
  const split = checkSplit("digits", opts.split ?? "train", ["train", "test", "all"] as const);
  let path = opts.dir ?? DIGITS_PATH;
  if ((await statOrNull(path))?.isDirectory) path = `${path.replace(/\/+$/, "")}/digits.csv.gz`;
  let bytes = await readBytes(path, "digits file");
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (e) {
      throw new DataError(`${path}: corrupt gzip data (${(e as Error).message})`, { path, cause: e });
    }
  }
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/).filter((l) => l.trim() !== "");
  const n = lines.length;
  if (n === 0) throw new DataError(`${path}: no data lines`, { path });
  const pixels = new Uint8Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const vals = lines[i].split(",").map((s) => Number(s.trim()));
    const bad = vals.findIndex((v, k) => !Number.isInteger(v) || v < 0 || v > (k < 64 ? 16 : 9));
    if (vals.length !== 65 || bad >= 0) {
      const why = vals.length !== 65
        ? `${vals.length} values, expected 64 pixels (0-16) and a label (0-9)`
        : `value ${bad + 1} (${lines[i].split(",")[bad]}) is not an integer in ${bad < 64 ? "0-16" : "0-9"}`;
      throw new DataError(`${path}: line ${i + 1}: ${why}`, { path });
    }
    for (let k = 0; k < 64; k++) pixels[i * 64 + k] = Math.round((vals[k] * 255) / 16);
    labels[i] = vals[64];
  }

  let indices = Array.from({ length: n }, (_, i) => i);
  if (split !== "all") {
    const rng = new Rng(opts.seed ?? 0);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [indices[i], indices[j]] = [indices[j], indices[i]];
    }
    const nTrain = n - Math.round((n * DIGITS_TEST_SIZE) / 1797);
    indices = (split === "train" ? indices.slice(0, nTrain) : indices.slice(nTrain)).sort((a, b) => a - b);
  }
  const m = indices.length;
  const outPixels = new Uint8Array(m * 64);
  const outLabels = new Int32Array(m);
  indices.forEach((src, i) => {
    outPixels.set(pixels.subarray(src * 64, src * 64 + 64), i * 64);
    outLabels[i] = labels[src];
  });
  return new MemoryDataset(`digits/${split}`, DIGITS_CLASSES, {
    pixels: outPixels,
    n: m,
    height: 8,
    width: 8,
    channels: 1,
    labels: outLabels,
  });
}
