/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 header
 * length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`,
 * then the raw little-endian tensor bytes; offsets count from the first byte after the header.
 *
 * Reading decodes every tensor to a HostTensor (see tensor.ts for the dtype mapping); writing is atomic.
 *
 * Reading is as strict as the reference library (huggingface/safetensors): the header is at most 100 MB of JSON
 * with no key twice (at any level: JSON.parse would silently keep the last), and the tensors' byte ranges tile
 * the data section exactly — in order, starting at 0, no overlap, no gap, nothing after the last — so no two
 * tensors can share bytes and no bytes go unaccounted for.
 */

import {
  CheckpointError,
  decodeStrided,
  displayPath,
  type DType,
  type HostTensor,
  isDType,
  isIndexList,
  ITEMSIZE,
  numel,
  printable,
  readCheckpointBytes,
  type StateDict,
} from "./tensor.ts";

/** A parsed safetensors file: tensors in file (data) order, and the header's `__metadata__` (string → string). */
export interface Safetensors {
  tensors: StateDict;
  metadata: Record<string, string>;
}

const METADATA_KEY = "__metadata__";
const PREFIX_BYTES = 8;
/** The reference library's limit on the JSON header. */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * The first key that appears twice in one object of a JSON text (already known to be valid JSON), or undefined.
 * A single pass with an explicit stack, so no nesting depth can overflow anything.
 */
function duplicateKey(json: string): string | undefined {
  const objects: (Set<string> | null)[] = [];
  let i = 0;
  while (i < json.length) {
    const ch = json.charCodeAt(i);
    if (ch === 0x22) { // a string: find its end, then whether it is a key (an object's, followed by ":")
      let j = i + 1;
      while (json.charCodeAt(j) !== 0x22) j += json.charCodeAt(j) === 0x5c ? 2 : 1;
      const literal = json.slice(i, j + 1);
      i = j + 1;
      const keys = objects[objects.length - 1];
      if (keys) {
        let k = i;
        while (k < json.length && " \t\n\r".includes(json[k])) k++;
        if (json[k] === ":") {
          const key = JSON.parse(literal) as string; // "\\u0061" and "a" are the same key
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      continue;
    }
    if (ch === 0x7b) objects.push(new Set()); // {
    else if (ch === 0x5b) objects.push(null); // [
    else if (ch === 0x7d || ch === 0x5d) objects.pop(); // } ]
    i++;
  }
  return undefined;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Parses a safetensors file held in memory. `name` (usually the path) starts every error message.
 * Throws CheckpointError on a truncated file, a corrupt header or a tensor entry that does not add up.
 */
export function parseSafetensors(bytes: Uint8Array, name = "<bytes>"): Safetensors {
  try {
    return parseUnguarded(bytes, name);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    // Only a corrupt file that slipped past the checks can get here.
    throw new CheckpointError(`${name}: corrupt checkpoint (${e instanceof Error ? e.message : e})`, {
      cause: e,
    });
  }
}

function parseUnguarded(bytes: Uint8Array, name: string): Safetensors {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${name}: ${problem}`);
  };
  if (bytes.length < PREFIX_BYTES) {
    fail(`truncated: ${bytes.length} bytes is too short for the 8-byte safetensors header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = dv.getBigUint64(0, true);
  const afterPrefix = bytes.length - PREFIX_BYTES;
  if (headerLength > BigInt(afterPrefix)) {
    fail(
      `truncated or corrupt: header length ${headerLength} exceeds the ${afterPrefix} bytes after the length prefix`,
    );
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `corrupt header: its length ${headerLength} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  const dataStart = PREFIX_BYTES + Number(headerLength);

  let header: unknown;
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, dataStart));
    header = JSON.parse(text);
  } catch (e) {
    fail(`corrupt header: not valid UTF-8 JSON (${e instanceof Error ? e.message : e})`);
  }
  if (!isPlainObject(header)) return fail("corrupt header: the JSON header is not an object");
  const twice = duplicateKey(text);
  if (twice !== undefined) {
    fail(`corrupt header: key ${printable(twice)} appears twice; refusing to pick one`);
  }

  const metadata: Record<string, string> = {};
  const rawMetadata = header[METADATA_KEY];
  if (rawMetadata !== undefined) {
    if (!isPlainObject(rawMetadata)) fail(`corrupt header: ${METADATA_KEY} is not an object`);
    for (const [key, value] of Object.entries(rawMetadata as Record<string, unknown>)) {
      if (typeof value !== "string") fail(`corrupt header: ${METADATA_KEY}.${key} is not a string`);
      metadata[key] = value as string;
    }
  }

  const data = bytes.subarray(dataStart);
  const entries: { key: string; begin: number; end: number; tensor: () => HostTensor }[] = [];
  for (const [key, entry] of Object.entries(header)) {
    if (key === METADATA_KEY) continue;
    const where = `tensor ${key}`;
    if (!isPlainObject(entry)) return fail(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDType(dtype)) return fail(`${where}: unsupported dtype ${JSON.stringify(dtype)}`);
    if (!isIndexList(shape)) return fail(`${where}: invalid shape ${JSON.stringify(shape)}`);
    if (!isIndexList(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]) {
      return fail(`${where}: invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets;
    if (end > data.length) {
      fail(
        `${where}: data_offsets [${begin}, ${end}] reach past the end of the ${data.length}-byte data section ` +
          `(truncated file?)`,
      );
    }
    const expected = numel(shape) * ITEMSIZE[dtype];
    if (end - begin !== expected) {
      fail(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} ` +
          `${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    entries.push({
      key,
      begin,
      end,
      tensor: () => decodeStrided(dtype, data.subarray(begin, end), shape, `${name}: ${where}`),
    });
  }

  // Data order is the writer's order; JSON object order is not reliable in JS (integer-like keys move first).
  // A zero-size tensor written just before another shares its begin, hence the end as tie-break; the sort is
  // stable, so only several zero-size tensors at one offset fall back to header order.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // The ranges tile the data section: each begins where the previous one ends.
  let covered = 0;
  for (let i = 0; i < entries.length; i++) {
    const { key, begin, end } = entries[i];
    if (begin < covered) {
      const prev = entries[i - 1];
      const other = `tensor ${printable(prev.key)} [${prev.begin}, ${prev.end}]`;
      const where = `tensor ${printable(key)}: data_offsets [${begin}, ${end}]`;
      fail(`${where} overlap those of ${other}; refusing shared bytes`);
    }
    if (begin > covered) {
      const where = `tensor ${printable(key)}: data_offsets [${begin}, ${end}]`;
      fail(`${where} leave bytes ${covered}–${begin} unaccounted for`);
    }
    covered = end;
  }
  if (covered !== data.length) {
    fail(
      `${data.length - covered} bytes after the last tensor's data (the header does not account for them)`,
    );
  }
  const tensors: StateDict = new Map();
  for (const { key, tensor } of entries) tensors.set(key, tensor());
  return { tensors, metadata };
}

/** Reads and parses a safetensors file; a missing file is a CheckpointError naming the path. */
export async function readSafetensors(path: string | URL): Promise<Safetensors> {
  return parseSafetensors(await readCheckpointBytes(path), displayPath(path));
}

/** The dtype a HostTensor is written as: its decoded precision, keeping the stored integer width. */
function storedDType(key: string, t: HostTensor): DType {
  if (t.data instanceof Float32Array) return "F32";
  if (t.data instanceof Uint8Array) return t.dtype === "BOOL" ? "BOOL" : "U8";
  if (t.data instanceof Int32Array) {
    return t.dtype === "I64" || t.dtype === "I16" || t.dtype === "I8" || t.dtype === "U8" ? t.dtype : "I32";
  }
  throw new CheckpointError(
    `tensor ${key}: unsupported data array ${Object.prototype.toString.call(t.data)}`,
  );
}

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  I16: [-32768, 32767],
  I8: [-128, 127],
  U8: [0, 255],
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function encode(key: string, t: HostTensor, dtype: DType, out: Uint8Array): void {
  // Same representation in memory and on disk: copy the bytes (also keeps NaN payloads bit-exact).
  if (HOST_LITTLE_ENDIAN && (dtype === "F32" || dtype === "I32" || dtype === "BOOL")) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return;
  }
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const { data } = t;
  const range = INT_RANGE[dtype];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (range && (v < range[0] || v > range[1])) {
      throw new CheckpointError(`tensor ${key}: value ${v} does not fit in ${dtype}`);
    }
    switch (dtype) {
      case "F32":
        dv.setFloat32(i * 4, v, true);
        break;
      case "I64":
        // Sign-extend the int32 into the high word.
        dv.setInt32(i * 8, v, true);
        dv.setInt32(i * 8 + 4, v < 0 ? -1 : 0, true);
        break;
      case "I32":
        dv.setInt32(i * 4, v, true);
        break;
      case "I16":
        dv.setInt16(i * 2, v, true);
        break;
      default: // I8, U8, BOOL: one byte, two's complement.
        dv.setUint8(i, v & 0xff);
    }
  }
}

/**
 * Serializes tensors (in insertion order) to safetensors bytes, with `__metadata__` when `metadata` is given.
 * Float32Array data is written as F32 (so an F16/BF16/F64 tensor read earlier comes back as F32); Int32Array
 * keeps its integer dtype (I64, I32, I16, I8, U8; anything else becomes I32); Uint8Array is BOOL or U8.
 * The header is padded with spaces to a multiple of 8 bytes, as the reference library does, so the data
 * section starts 8-byte aligned.
 */
export function serializeSafetensors(tensors: StateDict, metadata?: Record<string, string>): Uint8Array {
  const headerParts: string[] = [];
  const plan: { key: string; tensor: HostTensor; dtype: DType; begin: number; end: number }[] = [];
  let offset = 0;
  for (const [key, tensor] of tensors) {
    if (key === METADATA_KEY) throw new CheckpointError(`tensor name ${METADATA_KEY} is reserved`);
    if (!isIndexList(tensor.shape) || numel(tensor.shape) !== tensor.data.length) {
      throw new CheckpointError(
        `tensor ${key}: shape ${
          JSON.stringify(tensor.shape)
        } does not match its ${tensor.data.length} elements`,
      );
    }
    const dtype = storedDType(key, tensor);
    const end = offset + tensor.data.length * ITEMSIZE[dtype];
    plan.push({ key, tensor, dtype, begin: offset, end });
    // Built by hand rather than JSON.stringify(object) so integer-like names cannot be reordered.
    headerParts.push(
      `${JSON.stringify(key)}:${JSON.stringify({ dtype, shape: tensor.shape, data_offsets: [offset, end] })}`,
    );
    offset = end;
  }
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") throw new CheckpointError(`metadata ${key}: value is not a string`);
    }
    headerParts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  const json = new TextEncoder().encode(`{${headerParts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(PREFIX_BYTES + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.length, PREFIX_BYTES + headerLength);
  const dataStart = PREFIX_BYTES + headerLength;
  for (const { key, tensor, dtype, begin, end } of plan) {
    encode(key, tensor, dtype, out.subarray(dataStart + begin, dataStart + end));
  }
  return out;
}

/**
 * Writes a safetensors file atomically (see {@link writeFileAtomic}): a killed process leaves either the old
 * file or the new one, never half of one. Errors are CheckpointErrors naming the file, the cause kept.
 */
export async function writeSafetensors(
  path: string | URL,
  tensors: StateDict,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const target = displayPath(path);
  try {
    await writeFileAtomic(target, bytes);
  } catch (e) {
    throw new CheckpointError(`cannot write ${target}: ${e instanceof Error ? e.message : e}`, { cause: e });
  }
}

/** The temporary name {@link writeFileAtomic} writes `path` under first: `path.tmp-<pid>`. */
export function tempPath(path: string, pid = Deno.pid): string {
  return `${path}.tmp-${pid}`;
}

/** The PID in a temporary file's name ({@link tempPath}), or null when `name` is not one. */
export function tempPid(name: string): number | null {
  const m = name.match(/\.tmp-(\d+)$/);
  return m ? Number(m[1]) : null;
}

/**
 * Writes `bytes` to `path` atomically: to {@link tempPath} first, flushed, then renamed over `path`, so a
 * killed process (or a full disk) leaves either the old file or the new one, never half of one. On failure the
 * temporary file is removed and the error (e.g. ENOSPC, `code` "ENOSPC") is thrown as it came.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = tempPath(path);
  try {
    using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    // Flush before the rename so a crash cannot publish a name that points at unwritten blocks.
    await file.syncData();
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
