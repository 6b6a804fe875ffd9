/**
 * Building blocks shared by the dataset loaders: a dataset of image files decoded on demand, a dataset held in
 * memory, and file helpers whose errors are {@link DataError}s naming the path.
 */
import {
  DataError,
  type Dataset,
  type ImageU8,
  type LoadableSample,
  readRegularFile,
  type Sample,
} from "../dataset.ts";
import { decodeRgb } from "../image.ts";

/** A RangeError for an index outside [0, length). */
export function checkIndex(i: number, length: number, name: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw new RangeError(`${name}: index ${i} is outside [0, ${length})`);
  }
}

/** A DataError unless `split` is one of `valid` (narrows its type). */
export function checkSplit<S extends string>(dataset: string, split: string, valid: readonly S[]): S {
  if (!(valid as readonly string[]).includes(split)) {
    throw new DataError(`${dataset} has no split "${split}" (splits: ${valid.join(", ")})`);
  }
  return split as S;
}

/** The file's metadata, or null when nothing is at `path`. */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

/** Reads a whole file; a DataError naming it (and saying what it is, e.g. "CIFAR-10 batch") when that fails. */
export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  return await readRegularFile(path, what);
}

/** Reads a text file (UTF-8, see {@link readBytes}). */
export async function readText(path: string, what: string): Promise<string> {
  return new TextDecoder().decode(await readBytes(path, what));
}

/** Reads and parses a JSON file; invalid JSON is a DataError naming the file. */
export async function readJson(path: string, what: string): Promise<unknown> {
  const text = await readText(path, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError(`${what} ${path} is not valid JSON: ${(e as Error).message}`, { path, cause: e });
  }
}

/**
 * The folder holding a dataset: `dir` itself when `probe` (a file or folder name) is in it, else the first of
 * `dir/<sub>` for `sub` in `subfolders` that holds it (the name the official archive unpacks to).
 *
 * @throws DataError naming `dir` and every place looked at when `probe` is nowhere.
 */
export async function findRoot(
  dir: string,
  probe: string,
  subfolders: readonly string[],
  dataset: string,
): Promise<string> {
  const base = dir.replace(/\/+$/, "") || "/";
  const candidates = [base, ...subfolders.map((s) => `${base}/${s}`)];
  for (const c of candidates) {
    if (await statOrNull(`${c}/${probe}`)) return c;
  }
  if (!(await statOrNull(base))) {
    throw new DataError(`${dataset}: data folder ${base} does not exist`, { path: base });
  }
  const looked = candidates.map((c) => `${c}/${probe}`).join(", ");
  throw new DataError(`${dataset}: ${base} does not look like the ${dataset} folder (no ${looked})`, {
    path: `${base}/${probe}`,
  });
}

/**
 * A dataset of image files decoded on demand with {@link decodeRgb} (`PIL.Image.open(path).convert("RGB")`).
 * `samples` can be passed straight to `evalBatches` (lib/data/eval_loader.ts).
 */
export class FileDataset implements Dataset {
  constructor(
    readonly name: string,
    readonly classes: readonly string[],
    /** One entry per sample: the image path and its class index. */
    readonly samples: readonly LoadableSample[],
  ) {}

  get length(): number {
    return this.samples.length;
  }

  /** @throws DataError naming the image when it cannot be read or decoded. */
  async get(i: number): Promise<Sample> {
    checkIndex(i, this.samples.length, this.name);
    const { path, target } = this.samples[i];
    const { width, height, data } = await decodeRgb(path);
    return { image: { data, width, height, channels: 3 }, label: target };
  }

  labels(): Promise<Int32Array> {
    return Promise.resolve(Int32Array.from(this.samples, (s) => s.target));
  }
}

/** Images held in memory: `pixels` is [n, height, width, channels] uint8, grey (1 channel) or RGB (3). */
export interface MemoryImages {
  pixels: Uint8Array;
  n: number;
  height: number;
  width: number;
  channels: 1 | 3;
  labels: ArrayLike<number>;
}

/** A dataset held in memory; grey images are replicated to 3 channels on `get`. */
export class MemoryDataset implements Dataset {
  readonly #src: MemoryImages;

  constructor(readonly name: string, readonly classes: readonly string[], src: MemoryImages) {
    const need = src.n * src.height * src.width * src.channels;
    if (src.pixels.length < need || src.labels.length !== src.n) {
      throw new RangeError(
        `${name}: ${src.pixels.length} pixels / ${src.labels.length} labels for ${src.n} images`,
      );
    }
    this.#src = src;
  }

  get length(): number {
    return this.#src.n;
  }

  /** Rejects with a RangeError for an index outside [0, length). */
  get(i: number): Promise<Sample> {
    return new Promise((resolve) => resolve(this.#get(i)));
  }

  #get(i: number): Sample {
    checkIndex(i, this.#src.n, this.name);
    const { pixels, height, width, channels, labels } = this.#src;
    const px = height * width;
    const src = pixels.subarray(i * px * channels, (i + 1) * px * channels);
    let data: Uint8Array;
    if (channels === 3) {
      data = src.slice();
    } else {
      data = new Uint8Array(px * 3);
      for (let p = 0; p < px; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = src[p];
    }
    const image: ImageU8 = { data, width, height, channels: 3 };
    return { image, label: labels[i] };
  }

  labels(): Promise<Int32Array> {
    return Promise.resolve(Int32Array.from(this.#src.labels));
  }
}

/** Checks that every label is an integer in [0, numClasses); a DataError naming `file` otherwise. */
export function checkLabels(
  labels: ArrayLike<number>,
  numClasses: number,
  file: string,
  what = "record",
): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new DataError(`${file}: ${what} ${i} has label ${l}, outside [0, ${numClasses})`, { path: file });
    }
  }
}
