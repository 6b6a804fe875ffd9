/**
 * Test-only writers of torch.save-style files, byte by byte, so that tests can build valid checkpoints (a tiny
 * model's weights as a `.pth`, a DeiT-B-sized one for timing) and hostile ones (hand-written pickle opcodes,
 * duplicated or misplaced zip entries) without PyTorch. Not a module of the library: nothing here is needed to
 * read checkpoints.
 */
import type { HostTensor, StateDict } from "../lib/io/tensor.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Writes pickle opcodes (protocol 2 unless `proto` says otherwise), enough to spell what torch.save writes. */
export class Pickle {
  private bytes: number[];

  constructor(proto = 2) {
    this.bytes = [0x80, proto]; // PROTO
  }

  op(...codes: (number | string)[]): this {
    for (const c of codes) {
      if (typeof c === "number") this.bytes.push(c);
      else for (const b of utf8(c)) this.bytes.push(b);
    }
    return this;
  }
  raw(bytes: ArrayLike<number>): this {
    for (let i = 0; i < bytes.length; i++) this.bytes.push(bytes[i]);
    return this;
  }
  str(s: string): this {
    const b = utf8(s);
    this.op(0x58, ...new Uint8Array(new Uint32Array([b.length]).buffer)); // BINUNICODE
    return this.raw(b);
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n); // BININT1
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a, ...new Uint8Array(new Int32Array([n]).buffer));
    const b = new Uint8Array(8); // LONG1, 8 bytes two's complement little-endian
    new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
    return this.op(0x8a, 8, ...b);
  }
  float(x: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false); // BINFLOAT is big-endian
    return this.op(0x47, ...b);
  }
  global(module: string, name: string): this {
    return this.op(0x63, `${module}\n${name}\n`); // GLOBAL
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).op(0x93); // STACK_GLOBAL
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  ints(xs: number[]): this {
    if (xs.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  reduce(): this {
    return this.op(0x52);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  setitems(): this {
    return this.op(0x75);
  }
  put(i: number): this {
    return this.op(0x71, i); // BINPUT
  }
  get(i: number): this {
    return this.op(0x68, i); // BINGET
  }
  orderedDict(): this {
    return this.global("collections", "OrderedDict").op(0x29).reduce();
  }
  /** `_rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, {})` */
  tensor(type: string, key: string, numel: number, offset: number, size: number[], stride: number[]): this {
    this.global("torch._utils", "_rebuild_tensor_v2").mark();
    this.mark().str("storage").global("torch", type).str(key).str("cpu").int(numel).tuple().op(0x51); // BINPERSID
    this.int(offset).ints(size).ints(stride).op(0x89); // NEWFALSE
    return this.orderedDict().tuple().reduce();
  }
  /** The dict items pushed by `fill`, as `{k: v, …}` (EMPTY_DICT MARK … SETITEMS). */
  dict(fill: (p: this) => void): this {
    this.emptyDict().mark();
    fill(this);
    return this.setitems();
  }
  /** The opcodes so far, without STOP. */
  body(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
  done(): Uint8Array {
    return new Uint8Array([...this.bytes, 0x2e]); // STOP
  }
}

// ---------------------------------------------------------------------------------------------------------
// Zip

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (bitwise-table, slow and obviously right: the reference for the library's fast one). */
export function crc32Reference(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export interface ZipEntry {
  name: string;
  /** the uncompressed bytes (for a stored entry, what is written). */
  data: Uint8Array;
  /** CRC to write (default: the data's). */
  crc?: number;
  /** a deflated entry: its compressed bytes (method 8), written instead of `data`; `size` is then declared. */
  deflated?: Uint8Array;
  /** the uncompressed size to declare (default `data.length`). */
  size?: number;
}

/**
 * A zip of stored (uncompressed, unless an entry brings its deflated bytes) entries laid out as PyTorch's writer does: local header (with a data
 * descriptor flag, zero sizes), data, data descriptor; then the central directory and its end record.
 * Duplicate names are written as given. `descriptor: false` writes sizes and CRC in the local header instead.
 */
export function storedZip(entries: ZipEntry[], opts: { descriptor?: boolean } = {}): Uint8Array {
  const descriptor = opts.descriptor ?? true;
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const push = (b: Uint8Array) => (parts.push(b), offset += b.length);
  for (const e of entries) {
    const name = utf8(e.name);
    const crc = e.crc ?? crc32Reference(e.data);
    const size = e.size ?? e.data.length;
    const body = e.deflated ?? e.data;
    const method = e.deflated ? 8 : 0;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, descriptor ? 0x0808 : 0x0800, true);
    lv.setUint16(8, method, true);
    if (!descriptor) {
      lv.setUint32(14, crc, true);
      lv.setUint32(18, body.length, true);
      lv.setUint32(22, size, true);
    }
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const at = offset;
    push(local);
    push(body);
    if (descriptor) {
      const d = new Uint8Array(16);
      const dv = new DataView(d.buffer);
      dv.setUint32(0, 0x08074b50, true);
      dv.setUint32(4, crc, true);
      dv.setUint32(8, body.length, true);
      dv.setUint32(12, size, true);
      push(d);
    }
    const c = new Uint8Array(46 + name.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, descriptor ? 0x0808 : 0x0800, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, at, true);
    c.set(name, 46);
    central.push(c);
  }
  const cdStart = offset;
  for (const c of central) push(c);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, offset - cdStart, true);
  ev.setUint32(16, cdStart, true);
  push(end);
  const out = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

/** Where an entry's records lie in a zip: its central directory record and its local header. */
export interface ZipRecord {
  name: string;
  central: number;
  local: number;
}

/** The records of a zip's central directory (a plain archive, no zip64), to patch fields in tests. */
export function zipRecords(zip: Uint8Array): ZipRecord[] {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let end = zip.length - 22;
  while (dv.getUint32(end, true) !== 0x06054b50) end--;
  const count = dv.getUint16(end + 10, true);
  let at = dv.getUint32(end + 16, true);
  const out: ZipRecord[] = [];
  for (let i = 0; i < count; i++) {
    const n = dv.getUint16(at + 28, true);
    const name = new TextDecoder().decode(zip.subarray(at + 46, at + 46 + n));
    out.push({ name, central: at, local: dv.getUint32(at + 42, true) });
    at += 46 + n + dv.getUint16(at + 30, true) + dv.getUint16(at + 32, true);
  }
  return out;
}

/** The entries of a stored zip (name and bytes, in directory order), to rewrite it. */
export function zipEntries(zip: Uint8Array): ZipEntry[] {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  return zipRecords(zip).map(({ name, central, local }) => {
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    return { name, data: zip.slice(start, start + dv.getUint32(central + 20, true)) };
  });
}

// ---------------------------------------------------------------------------------------------------------
// State dicts as torch.save checkpoints

const STORAGE: Record<string, [string, number]> = {
  F32: ["FloatStorage", 4],
  F16: ["HalfStorage", 2],
  BF16: ["BFloat16Storage", 2],
  F64: ["DoubleStorage", 8],
  I64: ["LongStorage", 8],
  I32: ["IntStorage", 4],
  I16: ["ShortStorage", 2],
  I8: ["CharStorage", 1],
  U8: ["ByteStorage", 1],
  BOOL: ["BoolStorage", 1],
};

/** The little-endian bytes of a host tensor in its dtype (F32, I64 and BOOL, what the tests write). */
export function tensorBytes(t: HostTensor): Uint8Array {
  if (t.dtype === "F32") return new Uint8Array(Float32Array.from(t.data).buffer);
  if (t.dtype === "I64") return new Uint8Array(BigInt64Array.from(t.data, (x) => BigInt(x)).buffer);
  if (t.dtype === "BOOL" || t.dtype === "U8") return Uint8Array.from(t.data);
  throw new Error(`tensorBytes: ${t.dtype} not written by the tests`);
}

export interface PthOptions {
  /** the top-level key of the weights (default "model"); "" writes a bare state dict. */
  key?: string;
  /** the archive folder inside the zip (default "archive"). */
  archive?: string;
  /** more top-level items, written by hand after the weights. */
  extra?: (p: Pickle) => void;
  /** more zip entries (e.g. the storages the `extra` items reference). */
  entries?: ZipEntry[];
  /** the zip writer (default storedZip, PyTorch's layout). */
  zip?: (entries: ZipEntry[]) => Uint8Array;
}

/**
 * A torch.save checkpoint of `sd`: `{key: OrderedDict(name → _rebuild_tensor_v2(…)), …extra}`, one storage
 * per tensor (entries `archive/data/<i>`), plus `version` and `byteorder`, as PyTorch ≥ 1.6 writes it.
 */
export function pthBytes(sd: StateDict, opts: PthOptions = {}): Uint8Array {
  const { key = "model", archive = "archive" } = opts;
  const entries: ZipEntry[] = [];
  const storages: ZipEntry[] = [];
  const weights = (p: Pickle) => {
    p.orderedDict().mark();
    let i = 0;
    for (const [name, t] of sd) {
      const [type, itemsize] = STORAGE[t.dtype];
      const bytes = tensorBytes(t);
      const n = bytes.length / itemsize;
      const strides = t.shape.map((_, k) => t.shape.slice(k + 1).reduce((a, b) => a * b, 1));
      p.str(name).tensor(type, String(i), n, 0, t.shape, strides);
      storages.push({ name: `${archive}/data/${i}`, data: bytes });
      i++;
    }
    p.setitems();
  };
  const p = new Pickle();
  if (key === "") weights(p);
  else {
    p.emptyDict().mark().str(key);
    weights(p);
    opts.extra?.(p);
    p.setitems();
  }
  entries.push({ name: `${archive}/data.pkl`, data: p.done() });
  entries.push({ name: `${archive}/byteorder`, data: utf8("little") });
  entries.push(...storages, ...(opts.entries ?? []));
  entries.push({ name: `${archive}/version`, data: utf8("3\n") });
  return (opts.zip ?? storedZip)(entries);
}
