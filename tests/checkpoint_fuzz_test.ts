/**
 * Seeded mutations of valid checkpoints (issue #17): byte flips, truncations, insertions, deletions and
 * length-field changes of a small `.pth` and `.safetensors` (the reference fixtures, written by PyTorch and the
 * safetensors library, and files this test writes with the project's safetensors writer and the test writer of
 * torch.save archives), plus mutations of the pickle inside a `.pth` with its CRC recomputed, so that they reach
 * the unpickler. Every case must end, quickly, in a clean CheckpointError or in an exact load (the original
 * tensors, bit for bit) — never another exception, a hang, or silently different weights.
 *
 * The one thing a format without a checksum cannot see: safetensors carries no CRC, so a flipped byte in its
 * tensor data is a different valid file. Flips are aimed at its prefix and header only; a header change that
 * still parses (a renamed tensor, another dtype of the same width) must then be refused by the model's key,
 * shape and dtype check, which is asserted through loadStateDict.
 */
import { assert, assertEquals } from "@std/assert";
import { type Loadable, loadStateDict, parseCheckpoint } from "../lib/io/checkpoint.ts";
import { serializeSafetensors } from "../lib/io/safetensors.ts";
import { CheckpointError, type HostTensor, numel, type StateDict } from "../lib/io/tensor.ts";
import { Pickle, pthBytes, storedZip, zipEntries, zipRecords } from "./pth_writer.ts";
import { FIXTURES } from "./helpers.ts";

/** mulberry32: a small seeded generator, so every case reproduces from its number. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const bytesOf = (t: HostTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Same names in the same order, dtypes, shapes and data bit for bit. */
function sameDict(a: StateDict, b: StateDict): boolean {
  if (a.size !== b.size) return false;
  const bs = [...b];
  return [...a].every(([k, t], i) => {
    const [k2, u] = bs[i];
    return k === k2 && t.dtype === u.dtype && JSON.stringify(t.shape) === JSON.stringify(u.shape) &&
      t.data.constructor === u.data.constructor && sameBytes(bytesOf(t), bytesOf(u));
  });
}

/** Same names (any order), dtypes and shapes: what a model's strict load checks. */
function sameLayout(a: StateDict, b: StateDict): boolean {
  return a.size === b.size && [...a].every(([k, t]) => {
    const u = b.get(k);
    return u !== undefined && u.dtype === t.dtype && JSON.stringify(u.shape) === JSON.stringify(t.shape);
  });
}

/** A model that expects exactly `sd`'s names and shapes; loadStateDict checks everything before touching it. */
function modelOf(sd: StateDict): Loadable {
  return {
    params: new Map(),
    torchShapes: () => new Map([...sd].map(([k, t]) => [k, t.shape])),
    toInternal: (_name, _shape, data) => data,
    toTorch: (_name, _shape, data) => data,
    headNames: [],
  };
}

// ---------------------------------------------------------------------------------------------------------
// The bases

function smallDict(): StateDict {
  const r = rng(99);
  const f = (shape: number[]) => Float32Array.from({ length: numel(shape) }, () => r() * 2 - 1);
  return new Map<string, HostTensor>([
    ["cls_token", { dtype: "F32", shape: [1, 1, 8], data: f([1, 1, 8]) }],
    ["pos_embed", { dtype: "F32", shape: [1, 5, 8], data: f([1, 5, 8]) }],
    ["blocks.0.attn.qkv.weight", { dtype: "F32", shape: [24, 8], data: f([24, 8]) }],
    ["blocks.0.attn.qkv.bias", { dtype: "F32", shape: [24], data: f([24]) }],
    ["head.weight", { dtype: "F32", shape: [3, 8], data: f([3, 8]) }],
    ["steps", { dtype: "I64", shape: [2], data: new Int32Array([7, -3]) }],
    ["mask", { dtype: "BOOL", shape: [4], data: new Uint8Array([1, 0, 0, 1]) }],
  ]);
}

/** A .pth with extras next to the weights, as training scripts save them. */
function smallPth(): Uint8Array {
  return pthBytes(smallDict(), {
    extra: (p: Pickle) => {
      p.str("epoch").int(12).str("best").float(0.75);
      p.str("args").global("argparse", "Namespace").op(0x29, 0x81).dict((q) =>
        q.str("lr").float(5e-4).str("model").str("deit").str("sizes").mark().int(1).int(2).tuple()
      ).op(0x62);
      p.str("optimizer").dict((q) =>
        q.str("param_groups").op(0x5d).mark().dict((r) =>
          r.str("lr").float(1e-3).str("params").ints([0, 1, 2])
        )
          .op(0x65)
      );
    },
  });
}

interface Base {
  name: string;
  bytes: Uint8Array;
  format: "pth" | "safetensors";
}

// ---------------------------------------------------------------------------------------------------------
// Mutations

interface Mutation {
  what: string;
  bytes: Uint8Array;
  /** the mutation may legitimately describe other weights (a consistent file): only the error type is checked. */
  consistent?: boolean;
}

/** Byte positions and widths of the zip's length and offset fields. */
function zipFields(zip: Uint8Array): [number, number][] {
  const fields: [number, number][] = [];
  for (const { central, local } of zipRecords(zip)) {
    for (const [off, w] of [[20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [42, 4]]) {
      fields.push([central + off, w]);
    }
    for (const [off, w] of [[18, 4], [22, 4], [26, 2], [28, 2]]) fields.push([local + off, w]);
  }
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let end = zip.length - 22;
  while (dv.getUint32(end, true) !== 0x06054b50) end--;
  for (const [off, w] of [[8, 2], [10, 2], [12, 4], [16, 4], [20, 2]]) fields.push([end + off, w]);
  if (end >= 20 && dv.getUint32(end - 20, true) === 0x07064b50) {
    fields.push([end - 20 + 8, 8]);
    const end64 = Number(dv.getBigUint64(end - 12, true));
    for (const off of [24, 32, 40, 48]) fields.push([end64 + off, 8]);
  }
  return fields;
}

function interesting(r: () => number, v: bigint, width: number): bigint {
  const max = (1n << BigInt(8 * width)) - 1n;
  const d = BigInt(1 + Math.floor(r() * 1000));
  const choices = [
    0n,
    v - 1n,
    v + 1n,
    v + d,
    v - d,
    max,
    BigInt(Math.floor(r() * 2 ** 32)),
    v * 2n,
    v ^ (1n << BigInt(Math.floor(r() * 8 * width))),
  ];
  const x = choices[Math.floor(r() * choices.length)];
  return ((x % (max + 1n)) + (max + 1n)) % (max + 1n);
}

function setField(bytes: Uint8Array, at: number, width: number, value: bigint) {
  for (let i = 0; i < width; i++) bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}
function getField(bytes: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]);
  return v;
}

function splice(
  bytes: Uint8Array,
  at: number,
  remove: number,
  insert: Uint8Array = new Uint8Array(),
): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length);
  out.set(bytes.subarray(0, at));
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

/** One seeded mutation of `base`. */
function mutate(base: Base, seed: number): Mutation {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const src = base.bytes;
  const noise = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  // safetensors has no checksum: its flips go to the prefix and header, where a change is detectable.
  const headerEnd = base.format === "safetensors"
    ? 8 + Number(new DataView(src.buffer, src.byteOffset).getBigUint64(0, true))
    : src.length;
  const kind = int(10);
  if (kind < 4) { // flip: xor a byte (half of them in the last 4 KiB, where the zip's directory is)
    const out = src.slice();
    const at = base.format === "pth" && r() < 0.5
      ? src.length - 1 - int(Math.min(4096, src.length))
      : int(headerEnd);
    const x = 1 + int(255);
    out[at] ^= x;
    return { what: `flip byte ${at} ^ 0x${x.toString(16)}`, bytes: out };
  }
  if (kind === 4) {
    const n = int(src.length);
    return { what: `truncate to ${n} bytes`, bytes: src.slice(0, n) };
  }
  if (kind === 5) {
    const at = int(src.length + 1), n = 1 + int(16);
    return { what: `insert ${n} bytes at ${at}`, bytes: splice(src, at, 0, noise(n)) };
  }
  if (kind === 6) {
    const at = int(src.length), n = 1 + int(16);
    return { what: `delete ${n} bytes at ${at}`, bytes: splice(src, at, Math.min(n, src.length - at)) };
  }
  // length fields
  if (base.format === "pth") {
    const fields = zipFields(src);
    const [at, w] = fields[int(fields.length)];
    const out = src.slice();
    const v = interesting(r, getField(src, at, w), w);
    setField(out, at, w, v);
    return { what: `zip field at ${at} (${w} bytes) := ${v}`, bytes: out };
  }
  if (r() < 0.4) { // the header-length prefix
    const out = src.slice();
    const v = interesting(r, getField(src, 0, 8), 8);
    setField(out, 0, 8, v);
    return { what: `header length := ${v}`, bytes: out };
  }
  // a number in the JSON header (a shape or an offset), the prefix kept consistent
  const header = new TextDecoder().decode(src.subarray(8, headerEnd));
  const numbers = [...header.matchAll(/\d+/g)];
  const m = numbers[int(numbers.length)];
  const v = interesting(r, BigInt(m[0]), 4);
  const text = header.slice(0, m.index) + String(v) + header.slice(m.index! + m[0].length);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + src.length - headerEnd);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(src.subarray(headerEnd), 8 + json.length);
  return { what: `header number ${m[0]} at ${m.index} := ${v}`, bytes: out };
}

/** A mutation of the pickle inside a .pth, the zip rebuilt with correct CRCs so it reaches the unpickler. */
function mutatePickle(base: Base, seed: number): Mutation {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const entries = zipEntries(base.bytes);
  const pkl = entries.find((e) => e.name.endsWith("/data.pkl"))!;
  let data: Uint8Array = pkl.data.slice();
  const at = int(data.length);
  const kind = int(4);
  let what: string;
  if (kind === 0 || kind === 1) {
    const x = 1 + int(255);
    data[at] ^= x;
    what = `pickle flip byte ${at} ^ 0x${x.toString(16)}`;
  } else if (kind === 2) {
    const n = 1 + int(8);
    data = splice(data, at, 0, Uint8Array.from({ length: n }, () => int(256)));
    what = `pickle insert ${n} at ${at}`;
  } else {
    const n = 1 + int(8);
    data = splice(data, at, Math.min(n, data.length - at));
    what = `pickle delete ${n} at ${at}`;
  }
  pkl.data = data;
  return { what, bytes: storedZip(entries), consistent: true };
}

// ---------------------------------------------------------------------------------------------------------

Deno.test("fuzz: mutated checkpoints end in a CheckpointError or an exact load, quickly", () => {
  const bases: Base[] = [
    {
      name: "vit_mini_distilled.pth",
      bytes: Deno.readFileSync(FIXTURES + "vit_mini_distilled.pth"),
      format: "pth",
    },
    { name: "small.pth", bytes: smallPth(), format: "pth" },
    {
      name: "vit_mini_distilled.safetensors",
      bytes: Deno.readFileSync(FIXTURES + "vit_mini_distilled.safetensors"),
      format: "safetensors",
    },
    {
      name: "small.safetensors",
      bytes: serializeSafetensors(smallDict(), { arch: "tiny", note: "fuzz" }),
      format: "safetensors",
    },
  ];
  // FUZZ_SEED shifts every case's seed and FUZZ_SCALE multiplies their number, for longer runs by hand.
  const seed0 = Number(Deno.env.get("FUZZ_SEED") ?? 0) * 1_000_000;
  const scale = Number(Deno.env.get("FUZZ_SCALE") ?? 1);
  const PER_BASE = Math.round(200 * scale);
  const PICKLE_CASES = Math.round(150 * scale);
  const stats = { cases: 0, refused: 0, exact: 0, refusedByModel: 0, consistentLoads: 0 };
  const reasons = new Map<string, number>();
  let slowest = 0;
  const t0 = performance.now();
  const rssBefore = Deno.memoryUsage().rss;

  for (const [b, base] of bases.entries()) {
    const original = parseCheckpoint(base.bytes, base.name);
    const cases: Mutation[] = [];
    for (let i = 0; i < PER_BASE; i++) cases.push(mutate(base, seed0 + 100_000 * b + i));
    if (base.format === "pth") {
      for (let i = 0; i < PICKLE_CASES; i++) {
        cases.push(mutatePickle(base, seed0 + 500_000 + 100_000 * b + i));
      }
    }
    for (const [i, m] of cases.entries()) {
      const label = `${base.name} case ${i}: ${m.what}`;
      const start = performance.now();
      let loaded: ReturnType<typeof parseCheckpoint> | undefined;
      try {
        loaded = parseCheckpoint(m.bytes, "fuzz");
      } catch (e) {
        if (!(e instanceof CheckpointError)) {
          throw new Error(`${label}: ${e} (not a CheckpointError)`, { cause: e });
        }
        assert(
          !e.message.includes("corrupt checkpoint ("),
          `${label}: an unexpected error slipped through: ${e.message}`,
        );
        assert(!e.message.includes("\n"), `${label}: not one line: ${e.message}`);
        stats.refused++;
        const reason = e.message.replace(/^fuzz: /, "").replace(/[\d[\],]+|0x[0-9a-f]+|"[^"]*"/g, "#").slice(
          0,
          60,
        );
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
      const ms = performance.now() - start;
      slowest = Math.max(slowest, ms);
      assert(ms < 2000, `${label}: took ${ms.toFixed(0)} ms`);
      stats.cases++;
      if (loaded === undefined) continue;
      for (const [k, t] of loaded.stateDict) assertEquals(t.data.length, numel(t.shape), `${label}: ${k}`);
      if (m.consistent) {
        stats.consistentLoads++;
        continue;
      }
      if (sameDict(loaded.stateDict, original.stateDict)) {
        assertEquals(loaded.extra, original.extra, `${label}: extras differ`);
        stats.exact++;
        continue;
      }
      // Only a safetensors header can say something else and still parse; the model's check must refuse it.
      assert(base.format === "safetensors", `${label}: loaded different weights`);
      assert(!sameLayout(loaded.stateDict, original.stateDict), `${label}: same layout, different weights`);
      let refused = false;
      try {
        loadStateDict(modelOf(original.stateDict), loaded.stateDict, { source: "fuzz" });
      } catch (e) {
        refused = e instanceof CheckpointError;
      }
      assert(refused, `${label}: a different state dict that the model's check would accept`);
      stats.refusedByModel++;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const grewMB = (Deno.memoryUsage().rss - rssBefore) / 2 ** 20;
  const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([r, n]) =>
    `    ${String(n).padStart(4)}  ${r}`
  );
  console.log(
    `fuzz: ${stats.cases} cases in ${seconds.toFixed(1)} s (slowest ${slowest.toFixed(0)} ms, rss +${
      grewMB.toFixed(0)
    } MB): ${stats.refused} refused, ${stats.exact} loaded exactly, ${stats.refusedByModel} parsed but refused by ` +
      `the model's check, ${stats.consistentLoads} consistent pickle mutations loaded\n  most common refusals:\n${
        top.join("\n")
      }`,
  );
  assert(seconds < 60 * scale, `the fuzz took ${seconds.toFixed(0)} s`);
  assertEquals(stats.refused + stats.exact + stats.refusedByModel + stats.consistentLoads, stats.cases);
});
