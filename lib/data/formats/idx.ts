/**
 * IDX files (the MNIST / Fashion-MNIST format), gzipped or not, and Fashion-MNIST from the Debian package
 * `dataset-fashion-mnist`.
 *
 * IDX: magic 0x0000 + type byte (0x08 = uint8) + number of dimensions, then one big-endian uint32 per
 * dimension, then the data row-major.
 */
import { gunzipSync } from "node:zlib";
import { DataError, readRegularFile } from "../dataset.ts";

/** Where Debian's dataset-fashion-mnist installs the IDX files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
] as const;

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/** Parse an IDX uint8 array (gunzipping first when the bytes are gzip). */
export function parseIdx(bytes: Uint8Array, name = "<bytes>"): IdxArray {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (e) {
      throw new DataError(`${name}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new DataError(`${name}: not an IDX file`);
  if (bytes[2] !== 0x08) throw new DataError(`${name}: IDX type 0x${bytes[2].toString(16)} is not uint8`);
  const ndim = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * ndim) throw new DataError(`${name}: truncated IDX header`);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const n = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndim;
  if (bytes.length < start + n) {
    throw new DataError(`${name}: truncated: header says ${n} values, file holds ${bytes.length - start}`);
  }
  return { shape, data: bytes.subarray(start, start + n) };
}

export async function readIdx(path: string): Promise<IdxArray> {
  return parseIdx(await readRegularFile(path, "IDX file"), path);
}

export interface GreyImages {
  /** `[n, h, w]` uint8. */
  images: Uint8Array;
  labels: Uint8Array;
  n: number;
  h: number;
  w: number;
}

/** One split of Fashion-MNIST ("train": 60,000 images, "test": 10,000), 28×28 grey. */
export async function readFashionMnist(
  split: "train" | "test",
  dir = FASHION_MNIST_DIR,
): Promise<GreyImages> {
  const stem = split === "train" ? "train" : "t10k";
  const find = async (base: string) => {
    for (const name of [`${base}.gz`, base]) {
      const p = `${dir}/${name}`;
      try {
        await Deno.stat(p);
        return p;
      } catch { /* try the next spelling */ }
    }
    throw new DataError(
      `Fashion-MNIST ${split} split not found: no ${dir}/${base}[.gz] (install Debian's dataset-fashion-mnist ` +
        `or pass the folder holding the IDX files)`,
    );
  };
  const img = await readIdx(await find(`${stem}-images-idx3-ubyte`));
  const lab = await readIdx(await find(`${stem}-labels-idx1-ubyte`));
  if (img.shape.length !== 3 || lab.shape.length !== 1 || img.shape[0] !== lab.shape[0]) {
    throw new DataError(
      `Fashion-MNIST ${split}: images [${img.shape}] and labels [${lab.shape}] do not match`,
    );
  }
  return { images: img.data, labels: lab.data, n: img.shape[0], h: img.shape[1], w: img.shape[2] };
}
