/**
 * Tests for lib/data/datasets/mod.ts and lib/data/formats/matlab.ts: every loader reads tiny files written here in the
 * dataset's official format (CIFAR binary batches, MATLAB Level 5 .mat files from a small writer below, iNat JSON,
 * IDX, an ImageFolder tree), plus Fashion-MNIST and sklearn's digits from the Debian packages when installed.
 */
import sharp from "sharp";
import { deflateSync, gzipSync } from "node:zlib";
import { assert, assertAlmostEquals, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  CIFAR100_CLASSES,
  CIFAR10_CLASSES,
  DataError,
  DATASET_NAMES,
  digits,
  DIGITS_PATH,
  fashionMnist,
  FileDataset,
  flowers102,
  imageFolderDataset,
  inaturalist,
  openDataset,
  stanfordCars,
} from "../lib/data/datasets/mod.ts";
import { cifar } from "../lib/data/datasets/mod.ts";
import type { Dataset } from "../lib/data/dataset.ts";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  matString,
  matStrings,
  type MatValue,
  parseMat,
  readMat,
} from "../lib/data/formats/mod.ts";

// ---------------------------------------------------------------------------------------------------- helpers

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "datasets_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function write(path: string, bytes: Uint8Array | string): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
  else await Deno.writeFile(path, bytes);
}

/** A solid-colour image file (JPEG or PNG by extension). */
async function writeImage(
  path: string,
  width: number,
  height: number,
  rgb: readonly number[],
): Promise<void> {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  await write(
    path,
    path.endsWith(".png") ? await img.png().toBuffer() : await img.jpeg({ quality: 95 }).toBuffer(),
  );
}

/** Asserts the promise rejects with a DataError whose message contains every one of `parts`. */
async function rejectsNaming(p: Promise<unknown>, ...parts: string[]): Promise<DataError> {
  const e = await assertRejects(() => p, DataError);
  for (const part of parts) assert(e.message.includes(part), `"${e.message}" should mention "${part}"`);
  return e;
}

/** Sample i's image, with its dimensions checked to be a 3-channel HWC buffer. */
async function sample(ds: Dataset, i: number) {
  const s = await ds.get(i);
  assertEquals(s.image.channels, 3);
  assertEquals(s.image.data.length, s.image.width * s.image.height * 3);
  return s;
}

function assertColour(data: Uint8Array, rgb: readonly number[], tol: number): void {
  for (let p = 0; p < data.length; p += 3) {
    for (let c = 0; c < 3; c++) assertAlmostEquals(data[p + c], rgb[c], tol);
  }
}

// ------------------------------------------------------------------------------------ a MAT-file writer (Level 5)

type MatIn =
  | {
    num: number[];
    dims?: number[];
    cls?: "double" | "uint8" | "uint16" | "int16" | "single";
    store?: number;
  }
  | { str: string | string[] }
  | { cell: MatIn[]; dims?: number[] }
  | { struct: Record<string, MatIn>[]; fields: string[]; dims?: number[] }
  | { empty: true };

const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  MATRIX: 14,
  COMPRESSED: 15,
};
const MX: Record<string, number> = {
  cell: 1,
  struct: 2,
  char: 4,
  double: 6,
  single: 7,
  int16: 10,
  uint8: 9,
  uint16: 11,
};
const STORE_OF: Record<string, number> = {
  double: MI.DOUBLE,
  single: MI.SINGLE,
  uint8: MI.UINT8,
  uint16: MI.UINT16,
  int16: MI.INT16,
};

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Encodes numbers as data of MAT type `type` in the given byte order. */
function encode(type: number, values: readonly number[], le: boolean): Uint8Array {
  const width = {
    [MI.INT8]: 1,
    [MI.UINT8]: 1,
    [MI.INT16]: 2,
    [MI.UINT16]: 2,
    [MI.INT32]: 4,
    [MI.UINT32]: 4,
    [MI.SINGLE]: 4,
    [MI.DOUBLE]: 8,
  }[type]!;
  const out = new Uint8Array(values.length * width);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    const p = i * width;
    if (type === MI.INT8) v.setInt8(p, x);
    else if (type === MI.UINT8) v.setUint8(p, x);
    else if (type === MI.INT16) v.setInt16(p, x, le);
    else if (type === MI.UINT16) v.setUint16(p, x, le);
    else if (type === MI.INT32) v.setInt32(p, x, le);
    else if (type === MI.UINT32) v.setUint32(p, x, le);
    else if (type === MI.SINGLE) v.setFloat32(p, x, le);
    else v.setFloat64(p, x, le);
  });
  return out;
}

/** A data element: 8-byte tag + data padded to 8 bytes, or the small format for 1–4 bytes (when allowed). */
function element(type: number, data: Uint8Array, le: boolean, small = true): Uint8Array {
  const tag = new DataView(new ArrayBuffer(8));
  if (small && data.length > 0 && data.length <= 4 && type !== MI.MATRIX) {
    tag.setUint32(0, (data.length << 16) | type, le);
    const out = new Uint8Array(8);
    out.set(new Uint8Array(tag.buffer));
    out.set(data, 4);
    return out;
  }
  tag.setUint32(0, type, le);
  tag.setUint32(4, data.length, le);
  const padded = new Uint8Array(Math.ceil(data.length / 8) * 8);
  padded.set(data);
  return concat([new Uint8Array(tag.buffer), padded]);
}

function matrix(name: string, v: MatIn, le: boolean): Uint8Array {
  if ("empty" in v) return element(MI.MATRIX, new Uint8Array(0), le);
  const header = (cls: number, dims: number[]) => [
    element(MI.UINT32, encode(MI.UINT32, [cls, 0], le), le),
    element(MI.INT32, encode(MI.INT32, dims, le), le),
    element(MI.INT8, new TextEncoder().encode(name), le),
  ];
  let parts: Uint8Array[];
  if ("num" in v) {
    const cls = v.cls ?? "double";
    const store = v.store ?? STORE_OF[cls];
    parts = [...header(MX[cls], v.dims ?? [1, v.num.length]), element(store, encode(store, v.num, le), le)];
  } else if ("str" in v) {
    const rows = typeof v.str === "string" ? [v.str] : v.str;
    const cols = rows[0]?.length ?? 0;
    const codes: number[] = [];
    for (let j = 0; j < cols; j++) for (const r of rows) codes.push(r.charCodeAt(j)); // column-major
    parts = [...header(MX.char, [rows.length, cols]), element(MI.UINT16, encode(MI.UINT16, codes, le), le)];
  } else if ("cell" in v) {
    parts = [...header(MX.cell, v.dims ?? [1, v.cell.length]), ...v.cell.map((c) => matrix("", c, le))];
  } else {
    const len = 32;
    const names = new Uint8Array(len * v.fields.length);
    v.fields.forEach((f, i) => names.set(new TextEncoder().encode(f), i * len));
    parts = [
      ...header(MX.struct, v.dims ?? [1, v.struct.length]),
      element(MI.INT32, encode(MI.INT32, [len], le), le),
      element(MI.INT8, names, le, false),
      ...v.struct.flatMap((e) => v.fields.map((f) => matrix("", e[f], le))),
    ];
  }
  return element(MI.MATRIX, concat(parts), le);
}

/** A Level 5 MAT-file holding `vars`, each variable miCOMPRESSED or not, in either byte order. */
function writeMat(
  vars: Record<string, MatIn>,
  opts: { compress?: boolean; bigEndian?: boolean } = {},
): Uint8Array {
  const le = !opts.bigEndian;
  const head = new Uint8Array(128).fill(0x20);
  head.set(new TextEncoder().encode("MATLAB 5.0 MAT-file, written by datasets_test.ts"));
  head.fill(0, 116, 124);
  new DataView(head.buffer).setUint16(124, 0x0100, le);
  head.set(new TextEncoder().encode(le ? "IM" : "MI"), 126);
  const body = Object.entries(vars).map(([name, v]) => {
    const m = matrix(name, v, le);
    if (!opts.compress) return m;
    const z = new Uint8Array(deflateSync(m));
    const tag = new DataView(new ArrayBuffer(8));
    tag.setUint32(0, MI.COMPRESSED, le);
    tag.setUint32(4, z.length, le);
    return concat([new Uint8Array(tag.buffer), z]); // compressed elements are not padded
  });
  return concat([head, ...body]);
}

// ------------------------------------------------------------------------------------------------- matlab.ts

const MAT_SAMPLE: Record<string, MatIn> = {
  // MATLAB stores doubles in the smallest integer type that holds them: doubles stored as uint8 here.
  labels: { num: [77, 77, 3, 102, 1], cls: "double", store: MI.UINT8 },
  ids: { num: [1, 2000, 65535], cls: "uint16", dims: [3, 1] },
  neg: { num: [-5, 7, -32768, 300], cls: "int16", dims: [2, 2] },
  f: { num: [0.5, -2.25], cls: "single" },
  d: { num: [Math.PI] },
  s: { str: "Aston Martin V8 Vantage Convertible 2012" },
  rows: { str: ["ab", "cd", "ef"] },
  names: { cell: [{ str: "AM General Hummer SUV 2000" }, { str: "x" }, { empty: true }] },
  annotations: {
    fields: ["bbox_x1", "class", "fname"],
    struct: [
      {
        bbox_x1: { num: [39], cls: "uint8" },
        class: { num: [14], cls: "uint8" },
        fname: { str: "00001.jpg" },
      },
      {
        bbox_x1: { num: [300], cls: "uint16" },
        class: { num: [3], cls: "uint8" },
        fname: { str: "00002.jpg" },
      },
    ],
  },
};

/** `v` narrowed to one kind of MAT value (an assertion failure otherwise). */
function kind<K extends MatValue["kind"]>(v: MatValue | undefined, k: K): Extract<MatValue, { kind: K }> {
  assert(v !== undefined && v.kind === k, `expected a ${k} value, got ${v?.kind}`);
  return v as Extract<MatValue, { kind: K }>;
}

function checkMatSample(vars: Map<string, MatValue>): void {
  assertEquals([...vars.keys()], Object.keys(MAT_SAMPLE));
  const labels = kind(vars.get("labels"), "numeric");
  assertEquals([labels.class, labels.dims, labels.logical], ["double", [1, 5], false]);
  assertEquals(Array.from(labels.data), [77, 77, 3, 102, 1]);
  const ids = kind(vars.get("ids"), "numeric");
  assertEquals([ids.class, ids.dims, Array.from(ids.data)], ["uint16", [3, 1], [1, 2000, 65535]]);
  assertEquals(Array.from(kind(vars.get("neg"), "numeric").data), [-5, 7, -32768, 300]);
  assertEquals(Array.from(kind(vars.get("f"), "numeric").data), [0.5, -2.25]);
  assertEquals(kind(vars.get("d"), "numeric").data[0], Math.PI);
  assertEquals(matString(vars.get("s")!, "s", "f.mat"), "Aston Martin V8 Vantage Convertible 2012");
  const rows = kind(vars.get("rows"), "char");
  assertEquals([rows.dims, rows.rows], [[3, 2], ["ab", "cd", "ef"]]);
  const names = kind(vars.get("names"), "cell");
  assertEquals(names.cells.length, 3);
  assertEquals(matStrings({ ...names, cells: names.cells.slice(0, 2) }, "names", "f.mat"), [
    "AM General Hummer SUV 2000",
    "x",
  ]);
  assertEquals(kind(names.cells[2], "numeric").data.length, 0); // an empty miMATRIX
  const annos = kind(vars.get("annotations"), "struct");
  assertEquals([annos.fields, annos.dims], [["bbox_x1", "class", "fname"], [1, 2]]);
  const num = (v: MatValue) => Array.from(kind(v, "numeric").data);
  assertEquals(annos.elements.map((e) => [num(e.bbox_x1), num(e.class), matString(e.fname, "", "")]), [
    [[39], [14], "00001.jpg"],
    [[300], [3], "00002.jpg"],
  ]);
}

Deno.test("parseMat: numeric classes/storage types, char, cell, struct; plain, compressed, big-endian", () => {
  checkMatSample(parseMat(writeMat(MAT_SAMPLE), "plain.mat"));
  checkMatSample(parseMat(writeMat(MAT_SAMPLE, { compress: true }), "compressed.mat"));
  checkMatSample(parseMat(writeMat(MAT_SAMPLE, { bigEndian: true }), "big.mat"));
  checkMatSample(parseMat(writeMat(MAT_SAMPLE, { bigEndian: true, compress: true }), "big-z.mat"));
});

Deno.test("parseMat: corrupt or unsupported files are DataErrors naming the file", async () => {
  const good = writeMat(MAT_SAMPLE);
  const zipped = writeMat(MAT_SAMPLE, { compress: true });
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(10), "not a MATLAB Level 5"],
    [new TextEncoder().encode("x".repeat(200)), "no endian indicator"],
    [good.slice(0, good.length - 20), "truncated"],
    [good.slice(0, 140), "truncated"],
    [
      concat([new Uint8Array([0x89]), new TextEncoder().encode("HDF\r\n\x1a\n"), new Uint8Array(200)]),
      "v7.3",
    ],
  ];
  // Flip bytes inside the first compressed variable's zlib stream.
  const broken = zipped.slice();
  for (let i = 140; i < 150; i++) broken[i] ^= 0xff;
  cases.push([broken, "variable 1"]);
  // A sparse array (class 5) is not supported.
  const sparse = good.slice();
  const flagsAt = 128 + 8 + 8; // first variable: miMATRIX tag, array flags tag, flags word
  new DataView(sparse.buffer).setUint32(flagsAt, 5, true);
  cases.push([sparse, "sparse"]);
  for (const [bytes, part] of cases) {
    const e = assertThrows(() => parseMat(bytes, "/data/x.mat"), DataError);
    assert(e.message.startsWith("/data/x.mat: "), e.message);
    assert(e.message.includes(part), `"${e.message}" should mention "${part}"`);
  }
  await rejectsNaming(readMat("/nonexistent/setid.mat"), "/nonexistent/setid.mat");
});

/** Writes .mat files with scipy.io.savemat (Flowers/Cars-like variables); false when python3-scipy is missing. */
const SCIPY_SCRIPT = `
import sys, numpy as np, scipy.io as sio
out = sys.argv[1]
annos = np.zeros((1, 2), dtype=[("bbox_x1", "O"), ("class", "O"), ("fname", "O")])
annos[0, 0] = (np.array([[39]], np.uint8), np.array([[14]], np.uint8), "00001.jpg")
annos[0, 1] = (np.array([[300]], np.uint16), np.array([[3]], np.uint8), "00002.jpg")
names = np.empty((1, 3), dtype=object)
names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo"]
data = {"labels": np.array([[77.0, 77, 3, 102, 1]]), "ids": np.array([[1], [2000], [65535]], np.uint16),
        "neg": np.array([[-5, -32768], [7, 300]], np.int16), "s": "Aston Martin", "class_names": names,
        "annotations": annos}
sio.savemat(out + "/plain.mat", data)
sio.savemat(out + "/zipped.mat", data, do_compression=True)
`;

async function scipySavemat(dir: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("python3", { args: ["-c", SCIPY_SCRIPT, dir], stderr: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

Deno.test("parseMat reads files written by scipy.io.savemat (when python3-scipy is installed)", async (t) => {
  await withTempDir(async (dir) => {
    if (!(await scipySavemat(dir))) {
      await t.step({ name: "python3-scipy not available", ignore: true, fn: () => {} });
      return;
    }
    for (const f of ["plain.mat", "zipped.mat"]) {
      const vars = await readMat(`${dir}/${f}`);
      assertEquals(Array.from(kind(vars.get("labels"), "numeric").data), [77, 77, 3, 102, 1]);
      const ids = kind(vars.get("ids"), "numeric");
      assertEquals([ids.class, ids.dims, Array.from(ids.data)], ["uint16", [3, 1], [1, 2000, 65535]]);
      assertEquals(Array.from(kind(vars.get("neg"), "numeric").data), [-5, 7, -32768, 300]); // column-major
      assertEquals(matString(vars.get("s")!, "s", f), "Aston Martin");
      assertEquals(matStrings(vars.get("class_names")!, "class_names", f), [
        "AM General Hummer SUV 2000",
        "Acura RL Sedan 2012",
        "smart fortwo",
      ]);
      const annos = kind(vars.get("annotations"), "struct");
      const num = (v: MatValue) => Array.from(kind(v, "numeric").data);
      assertEquals(annos.elements.map((e) => [num(e.bbox_x1), num(e.class), matString(e.fname, "", f)]), [
        [[39], [14], "00001.jpg"],
        [[300], [3], "00002.jpg"],
      ]);
    }
  });
});

// ----------------------------------------------------------------------------------------------------- CIFAR

/** One CIFAR record per label: planar R, G, B planes with a per-record pattern. */
function cifarRecords(labels: number[][], seed: number): { bytes: Uint8Array; pixels: Uint8Array[] } {
  const size = labels[0].length + 3072;
  const bytes = new Uint8Array(labels.length * size);
  const pixels: Uint8Array[] = [];
  labels.forEach((ls, r) => {
    bytes.set(ls, r * size);
    const planar = Uint8Array.from({ length: 3072 }, (_, k) => (k * 7 + r * 31 + seed * 13) & 0xff);
    bytes.set(planar, r * size + ls.length);
    pixels.push(planar);
  });
  return { bytes, pixels };
}

/** The expected HWC bytes of a planar record. */
function planarToHwc(planar: Uint8Array): Uint8Array {
  const out = new Uint8Array(3072);
  for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) out[3 * p + c] = planar[c * 1024 + p];
  return out;
}

Deno.test("cifar(10): official binary batches, planar -> HWC exact, class names, subfolder", async () => {
  await withTempDir(async (dir) => {
    const bin = `${dir}/cifar-10-batches-bin`;
    const trainPixels: Uint8Array[] = [];
    const trainLabels: number[] = [];
    for (let k = 1; k <= 5; k++) {
      const labels = [[(2 * k) % 10], [(2 * k + 1) % 10]];
      const { bytes, pixels } = cifarRecords(labels, k);
      await write(`${bin}/data_batch_${k}.bin`, bytes);
      trainPixels.push(...pixels);
      trainLabels.push(...labels.flat());
    }
    const test = cifarRecords([[9], [0]], 0);
    await write(`${bin}/test_batch.bin`, test.bytes);
    await write(`${bin}/batches.meta.txt`, CIFAR10_CLASSES.map((c) => c.toUpperCase()).join("\n") + "\n\n");

    const ds = await cifar(10, "test", dir); // the folder holding cifar-10-batches-bin/
    assertEquals([ds.name, ds.length], ["cifar10/test", 2]);
    assertEquals(ds.classes, CIFAR10_CLASSES.map((c) => c.toUpperCase()));
    const s1 = await sample(ds, 1);
    assertEquals([s1.image.width, s1.image.height, s1.label], [32, 32, 0]);
    assertEquals(s1.image.data, planarToHwc(test.pixels[1]));
    assertEquals(Array.from(await ds.labels!()), [9, 0]);

    const train = await cifar(10, "train", bin); // the batches folder itself
    assertEquals(train.length, 10);
    assertEquals(Array.from(await train.labels!()), trainLabels);
    for (const i of [0, 3, 9]) {
      const s = await sample(train, i);
      assertEquals(s.label, trainLabels[i]);
      assertEquals(s.image.data, planarToHwc(trainPixels[i]));
    }
    await assertRejects(() => train.get(10), RangeError);

    // Without batches.meta.txt the standard names are used.
    await Deno.remove(`${bin}/batches.meta.txt`);
    assertEquals((await cifar(10, "test", dir)).classes, CIFAR10_CLASSES);
  });
});

Deno.test("cifar(100): fine labels, fine_label_names.txt, cifar-100-binary/", async () => {
  await withTempDir(async (dir) => {
    const bin = `${dir}/cifar-100-binary`;
    const train = cifarRecords([[0, 99], [19, 4], [7, 50]], 1);
    await write(`${bin}/train.bin`, train.bytes);
    await write(`${bin}/test.bin`, cifarRecords([[3, 42]], 2).bytes);
    const ds = await cifar(100, "train", dir);
    assertEquals(ds.classes, CIFAR100_CLASSES);
    assertEquals(CIFAR100_CLASSES.length, 100);
    assertEquals([CIFAR100_CLASSES[0], CIFAR100_CLASSES[99]], ["apple", "worm"]);
    assertEquals(Array.from(await ds.labels!()), [99, 4, 50]);
    const s = await sample(ds, 2);
    assertEquals(s.label, 50);
    assertEquals(s.image.data, planarToHwc(train.pixels[2]));

    await write(`${bin}/fine_label_names.txt`, CIFAR100_CLASSES.map((c, i) => `${c}_${i}`).join("\n"));
    const test = await cifar(100, "test", bin);
    assertEquals([test.length, test.classes[42], (await test.get(0)).label], [
      1,
      `${CIFAR100_CLASSES[42]}_42`,
      42,
    ]);
  });
});

Deno.test("cifar: missing, truncated and corrupt batches are DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    await rejectsNaming(cifar(10, "test", `${dir}/nope`), `${dir}/nope`, "does not exist");
    await rejectsNaming(cifar(10, "test", dir), `${dir}/test_batch.bin`);
    const rec = cifarRecords([[1], [2]], 0).bytes;
    await write(`${dir}/test_batch.bin`, rec.subarray(0, rec.length - 1));
    await rejectsNaming(cifar(10, "test", dir), `${dir}/test_batch.bin`, "truncated");
    await write(`${dir}/test_batch.bin`, cifarRecords([[1], [10]], 0).bytes);
    await rejectsNaming(cifar(10, "test", dir), `${dir}/test_batch.bin`, "record 1 has label 10");
    await write(`${dir}/data_batch_1.bin`, rec);
    await write(`${dir}/data_batch_2.bin`, rec);
    await rejectsNaming(cifar(10, "train", dir), `${dir}/data_batch_3.bin`);
    await write(`${dir}/batches.meta.txt`, "cat\ndog\n");
    await write(`${dir}/test_batch.bin`, rec);
    await rejectsNaming(cifar(10, "test", dir), `${dir}/batches.meta.txt`, "2 class names");
    // A CIFAR-10 file read as CIFAR-100 is not a whole number of 3074-byte records.
    await write(`${dir}/test.bin`, rec);
    await rejectsNaming(cifar(100, "test", dir), `${dir}/test.bin`);
    await rejectsNaming(cifar(10, "val" as "test", dir), 'no split "val"');
  });
});

// ------------------------------------------------------------------------------------------------ Flowers-102

const FLOWER_COLOURS = [[200, 30, 40], [20, 180, 60], [30, 60, 210]];

async function writeFlowers(root: string, opts: { compress: boolean }): Promise<void> {
  for (const [k, rgb] of FLOWER_COLOURS.entries()) {
    await writeImage(`${root}/jpg/image_${String(k + 1).padStart(5, "0")}.jpg`, 10 + k, 8, rgb);
  }
  // imagelabels.mat: doubles stored as uint8, as MATLAB writes them; setid.mat: uint16 ids.
  await write(
    `${root}/imagelabels.mat`,
    writeMat({ labels: { num: [5, 102, 1], store: MI.UINT8 } }, { compress: opts.compress }),
  );
  await write(
    `${root}/setid.mat`,
    writeMat({
      trnid: { num: [2], cls: "uint16" },
      valid: { num: [3], cls: "uint16" },
      tstid: { num: [3, 1], cls: "uint16" },
    }, { compress: !opts.compress }),
  );
}

Deno.test("flowers102: splits from setid.mat, 1-based labels from imagelabels.mat, lazy JPEG decoding", async () => {
  for (const compress of [false, true]) {
    await withTempDir(async (dir) => {
      await writeFlowers(`${dir}/flowers-102`, { compress });
      const test = await flowers102("test", dir); // finds flowers-102/
      assertEquals([test.name, test.length, test.classes.length], ["flowers102/test", 2, 102]);
      assertEquals([test.classes[0], test.classes[101]], ["1", "102"]);
      assertEquals(test.samples.map((s) => s.path), [
        `${dir}/flowers-102/jpg/image_00003.jpg`,
        `${dir}/flowers-102/jpg/image_00001.jpg`,
      ]);
      assertEquals(Array.from(await test.labels()), [0, 4]);
      const s = await sample(test, 0);
      assertEquals([s.image.width, s.image.height, s.label], [12, 8, 0]);
      assertColour(s.image.data, FLOWER_COLOURS[2], 4);

      const train = await flowers102("train", `${dir}/flowers-102`);
      assertEquals(train.samples.map((x) => [x.path.split("/").pop(), x.target]), [["image_00002.jpg", 101]]);
      const val = await flowers102("val", dir);
      assertEquals(val.samples.map((x) => x.target), [0]);
      const trainval = await flowers102("trainval", dir);
      assertEquals(Array.from(await trainval.labels()), [101, 0]);
      assertColour((await sample(trainval, 0)).image.data, FLOWER_COLOURS[1], 4);
    });
  }
});

Deno.test("flowers102: missing/corrupt .mat files, bad ids and bad images are DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    await rejectsNaming(flowers102("train", dir), `${dir}/imagelabels.mat`);
    await writeFlowers(dir, { compress: true });
    const setid = await Deno.readFile(`${dir}/setid.mat`);
    await write(`${dir}/setid.mat`, setid.subarray(0, setid.length - 5));
    await rejectsNaming(flowers102("train", dir), `${dir}/setid.mat`);
    await write(
      `${dir}/setid.mat`,
      writeMat({ trnid: { num: [4] }, valid: { num: [1] }, tstid: { num: [1] } }),
    );
    await rejectsNaming(flowers102("train", dir), `${dir}/setid.mat`, "trnid(1) = 4");
    await write(`${dir}/setid.mat`, writeMat({ trnid: { num: [1] } }));
    await rejectsNaming(flowers102("test", dir), `${dir}/setid.mat`, "no variable 'tstid'");
    await write(`${dir}/imagelabels.mat`, new TextEncoder().encode("not a mat file at all"));
    await rejectsNaming(flowers102("train", dir), `${dir}/imagelabels.mat`, "not a MATLAB");
    await write(`${dir}/imagelabels.mat`, writeMat({ labels: { num: [1, 0, 2] } }));
    await rejectsNaming(flowers102("train", dir), `${dir}/imagelabels.mat`, "labels(2) = 0");

    // Images are decoded in get: a corrupt one is reported there, naming it.
    await write(`${dir}/imagelabels.mat`, writeMat({ labels: { num: [1, 2, 3] } }));
    await write(`${dir}/jpg/image_00001.jpg`, new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]));
    const ds = await flowers102("train", dir);
    await rejectsNaming(ds.get(0), `${dir}/jpg/image_00001.jpg`);
  });
});

// --------------------------------------------------------------------------------------------- Stanford Cars

const CAR_CLASSES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012"];

function carAnnos(rows: [number[], number, string][]): MatIn {
  const fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"];
  return {
    fields,
    struct: rows.map(([box, cls, fname]) => ({
      bbox_x1: { num: [box[0]], cls: "uint8" },
      bbox_y1: { num: [box[1]], cls: "uint8" },
      bbox_x2: { num: [box[2]], cls: "uint16" },
      bbox_y2: { num: [box[3]], cls: "uint16" },
      class: { num: [cls], cls: "uint8" },
      fname: { str: fname },
    })),
  };
}

async function writeCars(root: string): Promise<void> {
  await write(
    `${root}/devkit/cars_meta.mat`,
    writeMat({ class_names: { cell: CAR_CLASSES.map((str) => ({ str })) } }, { compress: true }),
  );
  await write(
    `${root}/devkit/cars_train_annos.mat`,
    writeMat({ annotations: carAnnos([[[1, 2, 300, 9], 3, "00001.jpg"], [[5, 6, 7, 8], 1, "00002.jpg"]]) }, {
      compress: true,
    }),
  );
  // The devkit's test annotations have no class; the labelled file sits beside devkit/ (torchvision's layout).
  await write(
    `${root}/cars_test_annos_withlabels.mat`,
    writeMat({ annotations: carAnnos([[[1, 1, 4, 4], 2, "00001.jpg"]]) }),
  );
  await writeImage(`${root}/cars_train/00001.jpg`, 9, 7, [250, 250, 0]);
  await writeImage(`${root}/cars_train/00002.jpg`, 16, 16, [0, 0, 0]);
  await writeImage(`${root}/cars_test/00001.jpg`, 5, 6, [0, 128, 255]);
}

Deno.test("stanfordCars: struct annotations, cell class names, withlabels test file", async () => {
  await withTempDir(async (dir) => {
    await writeCars(`${dir}/stanford_cars`);
    const train = await stanfordCars("train", dir);
    assertEquals([train.name, train.length], ["cars/train", 2]);
    assertEquals(train.classes, CAR_CLASSES);
    assertEquals(train.samples.map((s) => [s.path, s.target]), [
      [`${dir}/stanford_cars/cars_train/00001.jpg`, 2],
      [`${dir}/stanford_cars/cars_train/00002.jpg`, 0],
    ]);
    assertEquals(Array.from(train.boxes), [1, 2, 300, 9, 5, 6, 7, 8]);
    const s = await sample(train, 0);
    assertEquals([s.image.width, s.image.height, s.label], [9, 7, 2]);
    assertColour(s.image.data, [250, 250, 0], 6);

    const test = await stanfordCars("test", `${dir}/stanford_cars`);
    assertEquals(Array.from(await test.labels()), [1]);
    const t = await sample(test, 0);
    assertEquals([t.image.width, t.image.height], [5, 6]);
    assertColour(t.image.data, [0, 128, 255], 6);
  });
});

Deno.test("stanfordCars: missing test labels, bad classes and bad annotations are DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    await rejectsNaming(stanfordCars("train", dir), `${dir}/devkit`);
    await writeCars(dir);
    await Deno.remove(`${dir}/cars_test_annos_withlabels.mat`);
    await rejectsNaming(stanfordCars("test", dir), "cars_test_annos_withlabels.mat");
    // Also found in devkit/.
    await write(
      `${dir}/devkit/cars_test_annos_withlabels.mat`,
      writeMat({ annotations: carAnnos([[[1, 1, 2, 2], 4, "x.jpg"]]) }),
    );
    await rejectsNaming(
      stanfordCars("test", dir),
      `${dir}/devkit/cars_test_annos_withlabels.mat`,
      "class = 4",
    );
    await write(`${dir}/devkit/cars_train_annos.mat`, writeMat({ annotations: { cell: [] } }));
    await rejectsNaming(
      stanfordCars("train", dir),
      `${dir}/devkit/cars_train_annos.mat`,
      "expected a struct",
    );
    await write(`${dir}/devkit/cars_meta.mat`, new Uint8Array(300));
    await rejectsNaming(stanfordCars("train", dir), `${dir}/devkit/cars_meta.mat`);
  });
});

// ------------------------------------------------------------------------------------------------ iNaturalist

const TAXA = [
  { id: 0, name: "Quercus alba", genus: "Quercus", family: "Fagaceae", kingdom: "Plantae" },
  { id: 1, name: "Quercus rubra", genus: "Quercus", family: "Fagaceae", kingdom: "Plantae" },
  { id: 2, name: "Apis mellifera", genus: "Apis", family: "Apidae", kingdom: "Animalia" },
];

function inatJson(images: [number, string, number | null][], categories: object[]): string {
  return JSON.stringify({
    info: { year: 2019 },
    images: images.map(([id, file_name]) => ({ id, file_name, width: 4, height: 4 })),
    annotations: images.filter(([, , c]) => c !== null).map(([id, , category_id]) => ({
      id,
      image_id: id,
      category_id,
    })),
    categories,
  });
}

Deno.test("inaturalist: 2019 taxonomy in the split file, 2018 in categories.json, levels", async () => {
  await withTempDir(async (dir) => {
    const img = (rel: string) => `train_val2019/${rel}`;
    await writeImage(`${dir}/${img("Plants/1/a.png")}`, 3, 2, [1, 2, 3]);
    await write(
      `${dir}/train2019.json`,
      inatJson([[10, img("Plants/1/a.png"), 1], [11, img("Insects/2/b.jpg"), 2], [
        12,
        img("Plants/0/c.jpg"),
        0,
      ]], TAXA),
    );
    await write(`${dir}/val2019.json`, inatJson([[20, img("Insects/2/d.jpg"), 2]], TAXA));
    const train = await inaturalist(2019, "train", dir);
    assertEquals(train.name, "inat2019/train");
    assertEquals(train.classes, ["Apis mellifera", "Quercus alba", "Quercus rubra"]);
    assertEquals(train.samples.map((s) => [s.path, s.target]), [
      [`${dir}/train_val2019/Plants/1/a.png`, 2],
      [`${dir}/train_val2019/Insects/2/b.jpg`, 0],
      [`${dir}/train_val2019/Plants/0/c.jpg`, 1],
    ]);
    const s = await sample(train, 0);
    assertEquals([s.image.width, s.image.height, Array.from(s.image.data.subarray(0, 3))], [3, 2, [1, 2, 3]]);
    const genus = await inaturalist(2019, "train", dir, { level: "genus" });
    assertEquals(genus.classes, ["Apis", "Quercus"]);
    assertEquals(Array.from(await genus.labels()), [1, 0, 1]);
    const val = await inaturalist(2019, "val", dir, { level: "kingdom" });
    assertEquals([val.classes, Array.from(await val.labels())], [["Animalia", "Plantae"], [0]]);

    // 2018: the split files' categories have no taxonomy; categories.json has it.
    const short = TAXA.map(({ id, name }) => ({ id, name: `${name} (2018)`, supercategory: "x" }));
    await write(
      `${dir}/train2018.json`,
      inatJson([[1, "train_val2018/a.jpg", 2], [2, "train_val2018/b.jpg", 0]], short),
    );
    await write(`${dir}/categories.json`, JSON.stringify(TAXA));
    const y18 = await inaturalist(2018, "train", dir, { level: "family" });
    assertEquals([y18.classes, Array.from(await y18.labels())], [["Apidae", "Fagaceae"], [0, 1]]);
    const names18 = await inaturalist(2018, "train", dir);
    assertEquals(names18.classes, ["Apis mellifera", "Quercus alba", "Quercus rubra"]); // from categories.json
  });
});

Deno.test("inaturalist: missing or invalid JSON, missing annotations and taxonomy are DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    await rejectsNaming(inaturalist(2019, "val", dir), `${dir}/val2019.json`);
    await write(`${dir}/val2019.json`, '{"images": [');
    await rejectsNaming(inaturalist(2019, "val", dir), `${dir}/val2019.json`, "not valid JSON");
    await write(`${dir}/val2019.json`, JSON.stringify({ images: [] }));
    await rejectsNaming(inaturalist(2019, "val", dir), `${dir}/val2019.json`, '"annotations"');
    await write(`${dir}/val2019.json`, inatJson([[1, "a.jpg", 0], [2, "b.jpg", null]], TAXA));
    await rejectsNaming(
      inaturalist(2019, "val", dir),
      `${dir}/val2019.json`,
      "image 2 (b.jpg) has no annotation",
    );
    await write(`${dir}/val2019.json`, inatJson([[1, "a.jpg", 7]], TAXA));
    await rejectsNaming(inaturalist(2019, "val", dir), `${dir}/val2019.json`, "category 7");
    await write(`${dir}/val2018.json`, inatJson([[1, "a.jpg", 0]], [{ id: 0, name: "x" }]));
    await rejectsNaming(
      inaturalist(2018, "val", dir, { level: "genus" }),
      `${dir}/categories.json`,
      '"genus"',
    );
    await write(`${dir}/categories.json`, "[{]");
    await rejectsNaming(inaturalist(2018, "val", dir), `${dir}/categories.json`, "not valid JSON");
    await rejectsNaming(inaturalist(2019, "val", `${dir}/missing`), `${dir}/missing`, "does not exist");
  });
});

// ------------------------------------------------------------------------------------------------ ImageFolder

Deno.test("imageFolderDataset: ImageNet train/val layout, exact PNG pixels, missing split", async () => {
  await withTempDir(async (dir) => {
    await writeImage(`${dir}/train/n02/b.png`, 2, 3, [10, 20, 30]);
    await writeImage(`${dir}/train/n01/a.png`, 4, 1, [40, 50, 60]);
    await writeImage(`${dir}/train/n01/c.png`, 1, 1, [70, 80, 90]);
    await writeImage(`${dir}/val/n01/v.png`, 2, 2, [1, 2, 3]);
    await writeImage(`${dir}/val/n02/w.png`, 2, 2, [4, 5, 6]);
    const train = await imageFolderDataset(dir, { split: "train" });
    assert(train instanceof FileDataset);
    assertEquals([train.name, train.classes, train.length], ["imagefolder/train", ["n01", "n02"], 3]);
    assertEquals(Array.from(await train.labels()), [0, 0, 1]);
    const s = await sample(train, 2);
    assertEquals([s.image.width, s.image.height, s.label], [2, 3, 1]);
    assertEquals(Array.from(s.image.data), [
      10,
      20,
      30,
      10,
      20,
      30,
      10,
      20,
      30,
      10,
      20,
      30,
      10,
      20,
      30,
      10,
      20,
      30,
    ]);
    const val = await imageFolderDataset(`${dir}/`, { split: "val" });
    assertEquals(Array.from((await sample(val, 1)).image.data.subarray(0, 3)), [4, 5, 6]);
    assertEquals((await imageFolderDataset(`${dir}/val`)).length, 2); // no split: the folder itself

    await rejectsNaming(imageFolderDataset(dir, { split: "test" }), `${dir}/test`, 'no "test" split folder');
    await rejectsNaming(imageFolderDataset(`${dir}/gone`, { split: "val" }), `${dir}/gone`, "does not exist");
    await write(`${dir}/val/n01/bad.png`, "garbage");
    const bad = await imageFolderDataset(dir, { split: "val" });
    await rejectsNaming(bad.get(0), `${dir}/val/n01/bad.png`);
  });
});

// ------------------------------------------------------------------------------------------ Fashion-MNIST, digits

const haveFashion = (() => {
  try {
    return Deno.statSync(`${FASHION_MNIST_DIR}/t10k-images-idx3-ubyte.gz`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "fashionMnist: the Debian package's test split",
  ignore: !haveFashion,
  fn: async () => {
    const ds = await fashionMnist("test");
    assertEquals([ds.name, ds.length, ds.classes], ["fashion-mnist/test", 10000, [...FASHION_MNIST_CLASSES]]);
    const labels = await ds.labels!();
    assertEquals(labels.length, 10000);
    const counts = new Array(10).fill(0);
    for (const l of labels) counts[l]++;
    assertEquals(counts, new Array(10).fill(1000));
    for (const i of [0, 9999]) {
      const s = await sample(ds, i);
      assertEquals([s.image.width, s.image.height, s.label], [28, 28, labels[i]]);
      const d = s.image.data;
      for (let p = 0; p < d.length; p += 3) assert(d[p] === d[p + 1] && d[p] === d[p + 2]);
      assert(d.some((v) => v > 0));
    }
  },
});

function idx(dims: number[], data: number[]): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head.set([0, 0, 8, dims.length]);
  dims.forEach((d, i) => new DataView(head.buffer).setUint32(4 + 4 * i, d, false));
  return concat([head, Uint8Array.from(data)]);
}

Deno.test("fashionMnist: a tiny IDX pair (one gzipped), grey replicated; errors name the file", async () => {
  await withTempDir(async (dir) => {
    const pixels = Array.from({ length: 2 * 3 * 2 }, (_, k) => k * 20);
    await write(`${dir}/train-images-idx3-ubyte`, idx([2, 3, 2], pixels));
    await write(`${dir}/train-labels-idx1-ubyte.gz`, new Uint8Array(gzipSync(idx([2], [9, 0]))));
    const ds = await fashionMnist("train", dir);
    assertEquals([ds.name, ds.length], ["fashion-mnist/train", 2]);
    const s = await sample(ds, 1);
    assertEquals([s.image.width, s.image.height, s.label], [2, 3, 0]);
    assertEquals(Array.from(s.image.data), pixels.slice(6).flatMap((v) => [v, v, v]));
    assertEquals(Array.from(await ds.labels!()), [9, 0]);

    await write(`${dir}/train-images-idx3-ubyte`, idx([2, 3, 2], pixels).subarray(0, 20));
    await rejectsNaming(fashionMnist("train", dir), `${dir}/train-images-idx3-ubyte`, "truncated");
    await rejectsNaming(fashionMnist("test", dir), `${dir}/t10k-images-idx3-ubyte`);
    await write(`${dir}/train-images-idx3-ubyte`, idx([2, 3, 2], pixels));
    await write(`${dir}/train-labels-idx1-ubyte.gz`, new Uint8Array(gzipSync(idx([2], [9, 10]))));
    await rejectsNaming(fashionMnist("train", dir), dir, "image 1 has label 10");
  });
});

const haveDigits = (() => {
  try {
    return Deno.statSync(DIGITS_PATH).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "digits: sklearn's file, 1,797 images, deterministic 1,297 / 500 split",
  ignore: !haveDigits,
  fn: async () => {
    const all = await digits({ split: "all" });
    const train = await digits({ split: "train" });
    const test = await digits({ split: "test", dir: DIGITS_PATH.slice(0, DIGITS_PATH.lastIndexOf("/")) });
    assertEquals([all.length, train.length, test.length], [1797, 1297, 500]);
    assertEquals(all.classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    const counts = (ls: Int32Array) => {
      const c: number[] = new Array(10).fill(0);
      for (const l of ls) c[l]++;
      return c;
    };
    const testLabels = await test.labels!();
    const [ca, cr, ct] = [counts(await all.labels!()), counts(await train.labels!()), counts(testLabels)];
    assert(ca.every((n) => n >= 170));
    assertEquals(ca, cr.map((n, i) => n + ct[i])); // the splits partition the file
    // The file's first line is a 0: pixels scaled as round(v * 255 / 16), grey replicated.
    const first = await sample(all, 0);
    assertEquals([first.image.width, first.image.height, first.label], [8, 8, 0]);
    const row0 = [0, 0, 5, 13, 9, 1, 0, 0].map((v) => Math.round((v * 255) / 16));
    assertEquals(Array.from(first.image.data.subarray(0, 24)), row0.flatMap((v) => [v, v, v]));
    // Deterministic: the same seed gives the same split, another seed another one.
    const again = await digits({ split: "test" });
    assertEquals(await again.labels!(), testLabels);
    assertEquals((await again.get(123)).image.data, (await test.get(123)).image.data);
    const other = await digits({ split: "test", seed: 1 });
    assertEquals(other.length, 500);
    assert((await other.labels!()).some((l, i) => l !== testLabels[i]));
  },
});

Deno.test("digits: a custom CSV path; malformed lines are DataErrors naming the file and line", async () => {
  await withTempDir(async (dir) => {
    const line = (v: number, label: number) => [...new Array(64).fill(v), label].join(",");
    await write(`${dir}/d.csv`, [line(16, 3), line(8, 1), line(1, 7)].join("\n") + "\n");
    const ds = await digits({ split: "all", dir: `${dir}/d.csv` });
    assertEquals([ds.length, Array.from(await ds.labels!())], [3, [3, 1, 7]]);
    assertEquals([
      (await ds.get(0)).image.data[0],
      (await ds.get(1)).image.data[5],
      (await ds.get(2)).image.data[191],
    ], [
      255,
      128,
      16,
    ]);
    const [train, test] = [
      await digits({ split: "train", dir: `${dir}/d.csv` }),
      await digits({ split: "test", dir: `${dir}/d.csv` }),
    ];
    assertEquals(train.length + test.length, 3);
    await write(`${dir}/bad.csv`, [line(1, 2), line(17, 2)].join("\n"));
    await rejectsNaming(digits({ split: "all", dir: `${dir}/bad.csv` }), `${dir}/bad.csv`, "line 2");
    await write(`${dir}/bad.csv`, "1,2,3\n");
    await rejectsNaming(
      digits({ split: "all", dir: `${dir}/bad.csv` }),
      `${dir}/bad.csv`,
      "line 1",
      "3 values",
    );
    await rejectsNaming(digits({ dir }), `${dir}/digits.csv.gz`); // a folder without the file
  });
});

// ----------------------------------------------------------------------------------------------- openDataset

Deno.test("openDataset: names, splits, folders", async () => {
  const e = await rejectsNaming(openDataset("imagenet21k", "train", "/tmp"), "imagenet21k");
  for (const n of DATASET_NAMES) assert(e.message.includes(n));
  await rejectsNaming(openDataset("cifar10", "val", "/tmp"), 'no split "val"', "train, test");
  await rejectsNaming(openDataset("cars", "train"), '"cars" needs a data folder');
  await withTempDir(async (dir) => {
    await write(`${dir}/test_batch.bin`, cifarRecords([[4]], 0).bytes);
    const ds = await openDataset("cifar10", "test", dir);
    assertEquals([ds.name, ds.length, (await ds.get(0)).label], ["cifar10/test", 1, 4]);
    await write(`${dir}/val2019.json`, inatJson([[1, "a.jpg", 2]], TAXA));
    assertEquals((await openDataset("inat2019", "val", dir, { level: "genus" })).classes, [
      "Apis",
      "Quercus",
    ]);
    await rejectsNaming(openDataset("flowers102", "test", dir), "imagelabels.mat");
  });
  if (haveDigits) assertEquals((await openDataset("digits", "test")).length, 500);
});
