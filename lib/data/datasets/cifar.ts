/**
 * CIFAR-10 and CIFAR-100, binary versions (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * - CIFAR-10 (`cifar-10-binary.tar.gz` unpacks to `cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin`
 *   (train, 50,000 images) and `test_batch.bin` (10,000). Each record is 1 label byte then 3,072 pixel bytes: the
 *   32×32 red plane, then green, then blue, each row-major. Class names, one a line: `batches.meta.txt`.
 * - CIFAR-100 (`cifar-100-binary.tar.gz` unpacks to `cifar-100-binary/`): `train.bin` (50,000), `test.bin`
 *   (10,000). Each record is 2 label bytes (coarse, then fine) then the 3,072 pixel bytes. The label used here is
 *   the fine one (100 classes, as in DeiT); class names: `fine_label_names.txt`.
 *
 * Records stay in memory as read (about 154 MB for a train split); `get` converts one from planar to HWC.
 * When the class-name file is missing the standard names below are used.
 */
import { DataError, type Dataset, type Sample } from "../dataset.ts";
import { checkIndex, checkLabels, checkSplit, findRoot, readBytes, readText, statOrNull } from "./common.ts";

export const CIFAR10_CLASSES: readonly string[] = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

/** CIFAR-100 fine labels in label order (alphabetical), as in `fine_label_names.txt`. */
export const CIFAR100_CLASSES: readonly string[] = (
  "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can " +
  "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin " +
  "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster " +
  "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck " +
  "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk " +
  "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger " +
  "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split(" ");

const SIDE = 32;
const PIXELS = SIDE * SIDE * 3;

/** One split of CIFAR-10/100 in memory. */
class CifarDataset implements Dataset {
  readonly length: number;
  readonly #chunks: { bytes: Uint8Array; first: number; count: number }[];
  readonly #labels: Int32Array;
  readonly #recordSize: number;

  constructor(
    readonly name: string,
    readonly classes: readonly string[],
    chunks: { bytes: Uint8Array; count: number }[],
    labels: Int32Array,
    recordSize: number,
  ) {
    let first = 0;
    this.#chunks = chunks.map((c) => {
      const chunk = { ...c, first };
      first += c.count;
      return chunk;
    });
    this.length = first;
    this.#labels = labels;
    this.#recordSize = recordSize;
  }

  /** Rejects with a RangeError for an index outside [0, length). */
  get(i: number): Promise<Sample> {
    return new Promise((resolve) => resolve(this.#get(i)));
  }

  #get(i: number): Sample {
    checkIndex(i, this.length, this.name);
    const chunk = this.#chunks.findLast((c) => c.first <= i)!;
    const off = (i - chunk.first) * this.#recordSize + (this.#recordSize - PIXELS);
    const src = chunk.bytes;
    const plane = SIDE * SIDE;
    const data = new Uint8Array(PIXELS);
    for (let p = 0; p < plane; p++) {
      data[3 * p] = src[off + p];
      data[3 * p + 1] = src[off + plane + p];
      data[3 * p + 2] = src[off + 2 * plane + p];
    }
    return { image: { data, width: SIDE, height: SIDE, channels: 3 }, label: this.#labels[i] };
  }

  labels(): Promise<Int32Array> {
    return Promise.resolve(this.#labels.slice());
  }
}

/** Class names from a one-name-a-line file (blank lines ignored), or `fallback` when the file is absent. */
async function readClassNames(path: string, expected: readonly string[]): Promise<readonly string[]> {
  if (!(await statOrNull(path))) return expected;
  const names = (await readText(path, "class name file")).split(/\r?\n/).map((l) => l.trim()).filter((l) =>
    l
  );
  if (names.length !== expected.length) {
    throw new DataError(`${path}: ${names.length} class names, expected ${expected.length}`, { path });
  }
  return names;
}

/**
 * One split of CIFAR-10 or CIFAR-100 from the official binary files.
 *
 * @param dir the folder holding the `.bin` files, or the folder holding `cifar-10-batches-bin/` /
 *   `cifar-100-binary/`.
 * @throws DataError naming the file when a batch is missing, truncated (not a whole number of records) or holds
 *   a label out of range.
 */
export async function cifar(variant: 10 | 100, split: "train" | "test", dir: string): Promise<Dataset> {
  if (variant !== 10 && variant !== 100) {
    throw new DataError(`CIFAR variant must be 10 or 100, got ${variant}`);
  }
  const dataset = `cifar${variant}`;
  checkSplit(dataset, split, ["train", "test"] as const);
  const ten = variant === 10;
  const root = ten
    ? await findRoot(dir, "test_batch.bin", ["cifar-10-batches-bin"], "CIFAR-10")
    : await findRoot(dir, "test.bin", ["cifar-100-binary"], "CIFAR-100");
  const files = ten
    ? (split === "train" ? [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`) : ["test_batch.bin"])
    : [`${split}.bin`];
  const labelBytes = ten ? 1 : 2;
  const recordSize = labelBytes + PIXELS;
  const classes = await readClassNames(
    `${root}/${ten ? "batches.meta.txt" : "fine_label_names.txt"}`,
    ten ? CIFAR10_CLASSES : CIFAR100_CLASSES,
  );

  const chunks: { bytes: Uint8Array; count: number }[] = [];
  const labels: number[] = [];
  for (const f of files) {
    const path = `${root}/${f}`;
    const bytes = await readBytes(path, `CIFAR-${variant} ${split} batch`);
    if (bytes.length === 0 || bytes.length % recordSize !== 0) {
      throw new DataError(
        `${path}: ${bytes.length} bytes is not a whole number of ${recordSize}-byte CIFAR-${variant} records ` +
          `(truncated or not a CIFAR-${variant} binary batch)`,
        { path },
      );
    }
    const count = bytes.length / recordSize;
    const fileLabels = Array.from({ length: count }, (_, r) => bytes[r * recordSize + labelBytes - 1]);
    checkLabels(fileLabels, classes.length, path);
    if (!ten) {
      // The coarse label (first byte) must be a CIFAR-100 superclass too, or this is not a CIFAR-100 file.
      checkLabels(
        Array.from({ length: count }, (_, r) => bytes[r * recordSize]),
        20,
        path,
        "record (coarse)",
      );
    }
    for (const l of fileLabels) labels.push(l);
    chunks.push({ bytes, count });
  }
  return new CifarDataset(`${dataset}/${split}`, classes, chunks, Int32Array.from(labels), recordSize);
}
