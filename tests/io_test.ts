/**
 * Checkpoint I/O: the .pth and safetensors readers against the reference fixtures (written by PyTorch and the
 * safetensors format), hand-built torch.save archives for the layouts the fixtures do not exercise (storage
 * offsets, transposed and broadcast strides, other dtypes, big-endian storages), and damaged files.
 */

import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import { zipSync } from "fflate";
import { readCheckpointFile } from "../lib/io/checkpoint.ts";
import { parsePth, readPth } from "../lib/io/pth.ts";
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from "../lib/io/safetensors.ts";
import { CheckpointError, decodeStrided, type HostTensor, type StateDict } from "../lib/io/tensor.ts";
import { fromFileUrl } from "../lib/base/paths.ts";
import { crc32, crc32Portable } from "../lib/io/zip.ts";
import { crc32Reference, Pickle } from "./pth_writer.ts";

const FIXTURES = new URL("../../shared/fixtures/reference/", import.meta.url);
const fixture = (file: string) => fromFileUrl(new URL(file, FIXTURES));

/** Asserts that `fn` rejects with a CheckpointError whose message names `path` (and includes `text`). */
async function assertRejectsNaming(fn: () => Promise<unknown>, path: string, text?: string): Promise<void> {
  const e = await assertRejects(fn, CheckpointError) as CheckpointError;
  assertStringIncludes(e.message, path);
  if (text) assertStringIncludes(e.message, text);
}

/** The tensors as plain, comparable values. */
function plain(dict: StateDict): Record<string, { dtype: string; shape: number[]; data: number[] }> {
  return Object.fromEntries(
    [...dict].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: Array.from(t.data) }]),
  );
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "io_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Deterministic pseudo-random bytes (an LCG), so a failing corruption test reproduces. */
function noise(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Reference fixtures

Deno.test("pth and safetensors fixtures hold the same weights", async () => {
  const pth = await readPth(fixture("vit_mini_distilled.pth"));
  const st = await readSafetensors(fixture("vit_mini_distilled.safetensors"));
  assertEquals(pth.source, "model");
  assertEquals(pth.extra, { epoch: 7 });
  assertEquals(new Set(pth.stateDict.keys()), new Set(st.tensors.keys()));
  assertEquals(pth.stateDict.size, 35);
  assertEquals(plain(pth.stateDict), plain(st.tensors));
  for (const t of pth.stateDict.values()) assert(t.data instanceof Float32Array);
  assertEquals(pth.stateDict.get("patch_embed.proj.weight")!.shape, [48, 3, 8, 8]);
  assertEquals(pth.stateDict.get("dist_token")!.shape, [1, 1, 48]);
});

Deno.test("readCheckpointFile dispatches on magic bytes", async () => {
  const pth = await readCheckpointFile(fixture("vit_mini_distilled.pth"));
  const st = await readCheckpointFile(fixture("vit_mini_distilled.safetensors"));
  assertEquals([pth.format, st.format], ["pth", "safetensors"]);
  assertEquals(pth.extra, { epoch: 7 });
  assertEquals(pth.metadata, {});
  assertEquals(st.metadata.arch, "VisionTransformerDistilled");
  assertEquals(plain(pth.stateDict), plain(st.stateDict));
});

Deno.test("safetensors fixture metadata and byte-exact re-serialization", async () => {
  const path = fixture("vit_mini_distilled.safetensors");
  const { tensors, metadata } = await readSafetensors(path);
  assertEquals(metadata, {
    arch: "VisionTransformerDistilled",
    img_size: "32",
    patch_size: "8",
    embed_dim: "48",
    depth: "2",
    num_heads: "3",
    mlp_ratio: "4",
    num_classes: "10",
    layer_norm_eps: "1e-06",
    qkv_bias: "True",
  });
  // File order, not JSON key order, decides the map order.
  assertEquals([...tensors.keys()].slice(0, 3), ["cls_token", "pos_embed", "dist_token"]);
  assertEquals(serializeSafetensors(tensors, metadata), await Deno.readFile(path));
});

// ---------------------------------------------------------------------------------------------------------
// safetensors writing

Deno.test("safetensors round trip through an atomic write", async () => {
  const tensors: StateDict = new Map<string, HostTensor>([
    ["w", { dtype: "F32", shape: [2, 3], data: new Float32Array([1.5, -2, 0, 1e-30, 3e38, -0.25]) }],
    ["scalar", { dtype: "F32", shape: [], data: new Float32Array([42]) }],
    ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
    ["10", { dtype: "I64", shape: [4], data: new Int32Array([-1, 0, 2147483647, -2147483648]) }],
    ["idx", { dtype: "I32", shape: [2], data: new Int32Array([7, -7]) }],
    ["mask", { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) }],
  ]);
  const metadata = { format: "pt", note: "ünïcode ✓" };
  await withTempDir(async (dir) => {
    const path = `${dir}/out.safetensors`;
    await writeSafetensors(path, tensors, metadata);
    await writeSafetensors(path, tensors, metadata); // overwriting goes through the same rename
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["out.safetensors"]);
    const bytes = await Deno.readFile(path);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assertEquals(headerLength % 8, 0);
    const back = await readSafetensors(path);
    assertEquals(back.metadata, metadata);
    // "10" is an integer-like name: JSON objects would move it first, file order keeps it in place.
    assertEquals([...back.tensors.keys()], [...tensors.keys()]);
    assertEquals(plain(back.tensors), plain(tensors));
    assertEquals(serializeSafetensors(back.tensors, back.metadata), bytes);
  });
});

Deno.test("safetensors serialization rejects inconsistent tensors", () => {
  const bad: StateDict = new Map([["x", { dtype: "F32", shape: [3], data: new Float32Array(2) }]]);
  assertThrows(() => serializeSafetensors(bad), CheckpointError, "tensor x");
  const big: StateDict = new Map([["y", { dtype: "U8", shape: [1], data: new Int32Array([300]) }]]);
  assertThrows(() => serializeSafetensors(big), CheckpointError, "does not fit in U8");
});

// ---------------------------------------------------------------------------------------------------------
// Hand-built torch.save archives

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u16 = (xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);
const i64 = (xs: bigint[]) => new Uint8Array(new BigInt64Array(xs).buffer);

/** A torch.save zip: `<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/version` (stored, like torch). */
function pthZip(
  archive: string,
  pkl: Uint8Array,
  storages: Record<string, Uint8Array>,
  extra = {},
): Uint8Array {
  const files: Record<string, Uint8Array> = { [`${archive}/data.pkl`]: pkl, ...extra };
  for (const [key, bytes] of Object.entries(storages)) files[`${archive}/data/${key}`] = bytes;
  files[`${archive}/version`] = new TextEncoder().encode("3\n");
  return zipSync(files, { level: 0 });
}

const ARANGE12 = f32([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

Deno.test("pth: storage offsets, transposed and broadcast strides, shared storages, other dtypes", () => {
  const pkl = new Pickle().dict((p) => {
    p.str("state_dict").orderedDict().mark();
    // All of these view storage "0" = arange(12).
    p.str("transposed").tensor("FloatStorage", "0", 12, 1, [2, 3], [1, 2]);
    p.str("offset").tensor("FloatStorage", "0", 12, 6, [2, 3], [3, 1]);
    p.str("broadcast").tensor("FloatStorage", "0", 12, 0, [2, 2], [0, 1]);
    p.str("scalar").tensor("FloatStorage", "0", 12, 11, [], []);
    p.str("param").global("torch._utils", "_rebuild_parameter").mark();
    p.tensor("FloatStorage", "0", 12, 0, [3], [4]).op(0x88).orderedDict().tuple().reduce(); // NEWTRUE
    p.str("long").tensor("LongStorage", "1", 3, 0, [3], [1]);
    p.str("half_t").tensor("HalfStorage", "2", 4, 0, [2, 2], [1, 2]);
    p.str("bf16").tensor("BFloat16Storage", "3", 1, 0, [1], [1]);
    p.str("mask").tensor("BoolStorage", "4", 3, 0, [3], [1]);
    p.str("empty").tensor("FloatStorage", "0", 12, 0, [0, 5], [5, 1]);
    p.setitems();
    p.str("epoch").int(3).str("best_acc").float(0.5);
    // An unknown class: argparse.Namespace(lr=0.5) via NEWOBJ + BUILD.
    p.str("args").global("argparse", "Namespace").op(0x29, 0x81).dict((q) => q.str("lr").float(0.5)).op(0x62);
    // Optimizer state with a storage type we do not decode and whose bytes are absent: never needed.
    p.str("optimizer").dict((q) => q.int(0).tensor("ComplexFloatStorage", "9", 4, 0, [4], [1]));
  }).done();
  const zip = pthZip("ckpt_v2", pkl, {
    "0": ARANGE12,
    "1": i64([-2n, 2147483647n, -2147483648n]),
    "2": u16([0x3c00, 0xc000, 0x3800, 0x7bff]), // 1, -2, 0.5, 65504
    "3": u16([0x3fc0]), // bfloat16 1.5
    "4": new Uint8Array([1, 0, 1]),
  });
  const { stateDict, extra, source } = parsePth(zip, "mem.pth");
  assertEquals(source, "state_dict");
  assertEquals(extra, { epoch: 3, best_acc: 0.5, args: { __class__: "argparse.Namespace", lr: 0.5 } });
  assertEquals(plain(stateDict), {
    transposed: { dtype: "F32", shape: [2, 3], data: [1, 3, 5, 2, 4, 6] },
    offset: { dtype: "F32", shape: [2, 3], data: [6, 7, 8, 9, 10, 11] },
    broadcast: { dtype: "F32", shape: [2, 2], data: [0, 1, 0, 1] },
    scalar: { dtype: "F32", shape: [], data: [11] },
    param: { dtype: "F32", shape: [3], data: [0, 4, 8] },
    long: { dtype: "I64", shape: [3], data: [-2, 2147483647, -2147483648] },
    half_t: { dtype: "F16", shape: [2, 2], data: [1, 0.5, -2, 65504] },
    bf16: { dtype: "BF16", shape: [1], data: [1.5] },
    mask: { dtype: "BOOL", shape: [3], data: [1, 0, 1] },
    empty: { dtype: "F32", shape: [0, 5], data: [] },
  });
  assert(stateDict.get("long")!.data instanceof Int32Array);
  assert(stateDict.get("mask")!.data instanceof Uint8Array);
});

Deno.test("pth: bare state dict at the root, big-endian storages, any archive name", () => {
  const pkl = new Pickle().dict((p) => p.str("w").tensor("FloatStorage", "0", 3, 0, [3], [1])).done();
  const be = new Uint8Array(12);
  [1.25, -3, 1e-3].forEach((x, i) => new DataView(be.buffer).setFloat32(i * 4, x, false));
  const zip = pthZip("some.dir-name_1", pkl, { "0": be }, {
    "some.dir-name_1/byteorder": new TextEncoder().encode("big"),
  });
  const { stateDict, extra, source } = parsePth(zip, "be.pth");
  assertEquals(source, "root");
  assertEquals(extra, {});
  assertEquals(Array.from(stateDict.get("w")!.data), Array.from(new Float32Array([1.25, -3, 1e-3])));
});

Deno.test("pth: prefers model over state_dict over model_ema", () => {
  const weights = (p: Pickle, key: string, offset: number) =>
    p.str(key).dict((q) => q.str("w").tensor("FloatStorage", "0", 12, offset, [1], [1]));
  const read = (fill: (p: Pickle) => void) =>
    parsePth(pthZip("a", new Pickle().dict(fill).done(), { "0": ARANGE12 }));
  let r = read((p) => (weights(p, "model_ema", 3), weights(p, "state_dict", 2), weights(p, "model", 1)));
  assertEquals([r.source, r.stateDict.get("w")!.data[0]], ["model", 1]);
  assertEquals(r.extra, {}); // the other weight dicts hold tensors, so they are not plain extras
  r = read((p) => (weights(p, "model_ema", 3), weights(p, "state_dict", 2)));
  assertEquals([r.source, r.stateDict.get("w")!.data[0]], ["state_dict", 2]);
  r = read((p) => weights(p, "model_ema", 3));
  assertEquals([r.source, r.stateDict.get("w")!.data[0]], ["model_ema", 3]);
});

Deno.test("pth: damaged hand-built archives fail with clear messages", () => {
  const one = (type: string, numel: number, offset: number, size: number[], stride: number[]) =>
    new Pickle().dict((p) =>
      p.str("model").dict((q) => q.str("w").tensor(type, "0", numel, offset, size, stride))
    )
      .done();
  const ok = one("FloatStorage", 12, 0, [12], [1]);
  const cases: [string, Uint8Array, string][] = [
    ["missing storage", pthZip("a", ok, {}), "a/data/0 is missing"],
    ["short storage entry", pthZip("a", ok, { "0": f32([1, 2]) }), "holds 8 bytes"],
    [
      "view past the storage",
      pthZip("a", one("FloatStorage", 12, 5, [2, 4], [4, 1]), { "0": ARANGE12 }),
      "needs 13",
    ],
    [
      "unknown storage type",
      pthZip("a", one("ComplexFloatStorage", 12, 0, [1], [1]), {}),
      "ComplexFloatStorage",
    ],
    ["no data.pkl", zipSync({ "a/version": new Uint8Array([51]) }), "no <archive>/data.pkl"],
    ["truncated pickle", pthZip("a", ok.subarray(0, 40), { "0": ARANGE12 }), "corrupt data.pkl"],
    [
      "I64 out of int32 range",
      pthZip("a", one("LongStorage", 1, 0, [1], [1]), { "0": i64([1n << 40n]) }),
      "int32",
    ],
    ["no weights", pthZip("a", new Pickle().dict((p) => p.str("epoch").int(1)).done(), {}), "no state dict"],
    ["legacy format", new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46]), "legacy (pre-1.6)"],
    ["not a zip", new TextEncoder().encode("not a checkpoint at all"), "not a zip"],
  ];
  for (const [what, bytes, text] of cases) {
    const e = assertThrows(() => parsePth(bytes, "hand.pth"), CheckpointError, text, what);
    assertStringIncludes(e.message, "hand.pth", what);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Damaged files on disk, through the public entry point

Deno.test("damaged and missing files reject with a CheckpointError naming the file", async () => {
  const pth = await Deno.readFile(fixture("vit_mini_distilled.pth"));
  const st = await Deno.readFile(fixture("vit_mini_distilled.safetensors"));
  const lyingLong = st.slice();
  new DataView(lyingLong.buffer).setBigUint64(0, BigInt(st.length) * 4n, true);
  const lyingShort = st.slice();
  new DataView(lyingShort.buffer).setBigUint64(0, 64n, true);
  const corruptPth = noise(pth.length, 7);
  corruptPth.set(pth.subarray(0, 4));
  // 100 bytes cut from the middle: the end records survive but every offset behind the cut is off.
  const cutPth = new Uint8Array([...pth.subarray(0, 5000), ...pth.subarray(5100)]);
  const cases: [string, Uint8Array, string][] = [
    ["truncated.pth", pth.subarray(0, pth.length >> 1), "zip"],
    ["corrupt.pth", corruptPth, "zip"],
    ["cut.pth", cutPth, "zip"],
    ["truncated.safetensors", st.subarray(0, st.length >> 1), "truncated"],
    ["lying_long.safetensors", lyingLong, "header length"],
    ["lying_short.safetensors", lyingShort, "corrupt header"],
    ["garbage.bin", noise(1000, 3), "unrecognized checkpoint format"],
    ["empty.bin", new Uint8Array(0), "empty file"],
  ];
  await withTempDir(async (dir) => {
    for (const [file, bytes, text] of cases) {
      const path = `${dir}/${file}`;
      await Deno.writeFile(path, bytes);
      await assertRejectsNaming(() => readCheckpointFile(path), path, text);
    }
    // The format-specific readers report the same damage.
    await assertRejectsNaming(() => readPth(`${dir}/truncated.pth`), `${dir}/truncated.pth`);
    await assertRejectsNaming(() => readPth(`${dir}/garbage.bin`), `${dir}/garbage.bin`, "not a zip");
    await assertRejectsNaming(
      () => readSafetensors(`${dir}/truncated.safetensors`),
      `${dir}/truncated.safetensors`,
      "truncated",
    );
    const missing = `${dir}/does_not_exist.pth`;
    for (const read of [readCheckpointFile, readPth, readSafetensors]) {
      await assertRejectsNaming(() => read(missing), missing, "no such file");
    }
  });
});

Deno.test("safetensors header validation", () => {
  const header = (h: unknown, data = new Uint8Array(0)) => {
    const json = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  };
  const cases: [string, Uint8Array, string][] = [
    ["short", new Uint8Array(5), "truncated"],
    [
      "unknown dtype",
      header({ x: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
      "dtype",
    ],
    [
      "size mismatch",
      header({ x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      "needs 12",
    ],
    ["bad shape", header({ x: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }), "invalid shape"],
    [
      "past the end",
      header({ x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      "past",
    ],
    ["metadata", header({ __metadata__: { a: 1 } }), "__metadata__.a"],
    ["not an object", header([1, 2]), "not an object"],
  ];
  for (const [what, bytes, text] of cases) {
    const e = assertThrows(() => parseSafetensors(bytes, "x.safetensors"), CheckpointError, text, what);
    assertStringIncludes(e.message, "x.safetensors", what);
  }
});

Deno.test("F16: every half value decodes exactly (both byte orders, strided), as IEEE 754 binary16", () => {
  // The reference: sign, 5-bit exponent (bias 15), 10-bit fraction; subnormals, ±0, ±Infinity, NaN.
  const half = (h: number): number => {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) return sign * frac * 2 ** -24;
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * (1 + frac / 1024) * 2 ** (exp - 15);
  };
  const n = 65536;
  for (const littleEndian of [true, false]) {
    const bytes = new Uint8Array(n * 2);
    const dv = new DataView(bytes.buffer);
    for (let h = 0; h < n; h++) dv.setUint16(h * 2, h, littleEndian);
    const t = decodeStrided("F16", bytes, [n], "f16", { littleEndian });
    assert(t.data instanceof Float32Array);
    for (let h = 0; h < n; h++) {
      if (!Object.is(t.data[h], half(h))) throw new Error(`0x${h.toString(16)}: ${t.data[h]} != ${half(h)}`);
    }
    // Transposed [256, 256] view: element (i, j) is half value j * 256 + i.
    const tt = decodeStrided("F16", bytes, [256, 256], "f16", { strides: [1, 256], littleEndian });
    for (const [i, j] of [[0, 0], [1, 2], [255, 60], [7, 124], [200, 255]]) {
      assert(Object.is(tt.data[i * 256 + j], half(j * 256 + i)));
    }
  }
});

Deno.test("CRC-32: node:zlib's, the portable one and a bitwise reference agree (every length and alignment)", () => {
  const check = "123456789";
  assertEquals(crc32(new TextEncoder().encode(check)), 0xcbf43926);
  assertEquals(crc32Portable(new TextEncoder().encode(check)), 0xcbf43926);
  assertEquals(crc32Portable(new Uint8Array(0)), 0);
  const data = noise(5000, 11);
  for (const [start, length] of [[0, 0], [1, 63], [3, 64], [2, 65], [5, 1000], [7, 4993], [0, 5000]]) {
    const view = data.subarray(start, start + length);
    const expected = crc32Reference(view);
    assertEquals(crc32(view), expected, `${start}+${length}`);
    assertEquals(crc32Portable(view), expected, `${start}+${length}`);
  }
});
