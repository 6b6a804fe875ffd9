/**
 * Host-side tensors: what checkpoint files hold before they become tf.Tensors.
 *
 * Float dtypes (F32, F16, BF16, F64) are always decoded to Float32Array; integer dtypes (I64, I32, I16, I8, U8)
 * to Int32Array (an I64 value outside the int32 range is an error); BOOL to Uint8Array.
 */
export type DType = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface HostTensor {
  /** dtype as stored in the file (safetensors spelling). */
  dtype: DType;
  /** row-major (C-contiguous) shape; [] for a scalar. */
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

/** Ordered map from state-dict key (timm's names) to tensor. */
export type StateDict = Map<string, HostTensor>;

/** A checkpoint that cannot be read or does not fit the model: the message names the file and the problem. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Every dtype a checkpoint may store, in safetensors spelling. */
export const DTYPES: readonly DType[] = [
  "F32",
  "F16",
  "BF16",
  "F64",
  "I64",
  "I32",
  "I16",
  "I8",
  "U8",
  "BOOL",
];

/** Bytes per element of each stored dtype. */
export const ITEMSIZE: Readonly<Record<DType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && (DTYPES as readonly string[]).includes(x);
}

/** Row-major element strides of `shape` (e.g. [2, 3, 4] → [12, 4, 1]). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    strides[k] = s;
    s *= shape[k];
  }
  return strides;
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** True when `x` is a list of non-negative safe integers (a valid shape, stride or offset list). */
export function isIndexList(x: unknown): x is number[] {
  return Array.isArray(x) && x.every(isIndex);
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** The most elements one decoded tensor may have (a typed array's limit is 2^32 and more bytes than RAM). */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** Where the elements of a (possibly strided) tensor live inside a raw buffer; all counts are in elements. */
export interface StridedLayout {
  /** element strides per dimension; default row-major contiguous. Torch never writes negative strides. */
  strides?: readonly number[];
  /** index of element (0, …, 0) in the buffer; default 0. */
  offset?: number;
  /** byte order of the buffer; default true (every format we read is little-endian unless it says otherwise). */
  littleEndian?: boolean;
}

/**
 * Decodes a tensor of `dtype` and `shape` out of raw bytes into a contiguous row-major HostTensor: element
 * (i0, …, ik) is read from element index `offset + Σ ij·strides[j]` of `bytes`. Floats become Float32Array,
 * integers Int32Array, BOOL Uint8Array (see the module comment).
 *
 * Throws CheckpointError with `context` ("file: tensor name") before the message when the layout reaches
 * past the end of `bytes` or an I64 value does not fit in int32.
 */
export function decodeStrided(
  dtype: DType,
  bytes: Uint8Array,
  shape: readonly number[],
  context: string,
  layout: StridedLayout = {},
): HostTensor {
  const { offset = 0, littleEndian = true } = layout;
  const strides = layout.strides ?? contiguousStrides(shape);
  if (!isIndexList(shape) || !isIndexList(strides) || !isIndex(offset) || strides.length !== shape.length) {
    throw new CheckpointError(
      `${context}: invalid layout (shape ${JSON.stringify(shape)}, strides ${JSON.stringify(strides)}, ` +
        `offset ${JSON.stringify(offset)})`,
    );
  }
  const n = numel(shape);
  const itemsize = ITEMSIZE[dtype];
  const available = Math.floor(bytes.length / itemsize);
  const extent = stridedExtent(shape, strides, offset);
  if (extent > available) {
    const [sizes, steps] = [JSON.stringify(shape), JSON.stringify(strides)];
    const layout = `shape ${sizes} with strides ${steps} at offset ${offset}`;
    throw new CheckpointError(
      `${context}: ${layout} needs ${extent} elements of ${dtype}, but its storage holds only ${available} ` +
        `(truncated storage?)`,
    );
  }
  if (n > MAX_ELEMENTS) {
    throw new CheckpointError(
      `${context}: shape ${JSON.stringify(shape)} has more elements than an array can hold`,
    );
  }
  const out = dtype === "BOOL"
    ? new Uint8Array(n)
    : dtype.startsWith("F") || dtype === "BF16"
    ? new Float32Array(n)
    : new Int32Array(n);
  const result: HostTensor = { dtype, shape: [...shape], data: out };
  if (n === 0) return result;

  // Fast path: a contiguous run whose bytes already are the output representation is one copy.
  // (slice, not a view, so the tensor neither aliases nor keeps alive the whole file buffer.)
  const rowMajor = contiguousStrides(shape);
  const contiguous = shape.every((dim, k) => dim === 1 || strides[k] === rowMajor[k]);
  if (contiguous && littleEndian === HOST_LITTLE_ENDIAN) {
    const start = bytes.byteOffset + offset * itemsize;
    if (dtype === "F32" || dtype === "I32") {
      const copy = bytes.buffer.slice(start, start + n * itemsize);
      result.data = dtype === "F32" ? new Float32Array(copy) : new Int32Array(copy);
      return result;
    }
    if (dtype === "BOOL" || dtype === "U8" || dtype === "I8") {
      const view = dtype === "I8"
        ? new Int8Array(bytes.buffer, start, n)
        : new Uint8Array(bytes.buffer, start, n);
      out.set(view);
      return result;
    }
  }

  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = littleEndian;
  const bf16Bits = new Uint32Array(1);
  const bf16Value = new Float32Array(bf16Bits.buffer);
  const read: (i: number) => number = {
    F32: (i: number) => dv.getFloat32(i * 4, le),
    F64: (i: number) => dv.getFloat64(i * 8, le),
    F16: (i: number) => dv.getFloat16(i * 2, le), // IEEE half, exact in float32 (Deno has it natively)
    // bfloat16 is the top half of a float32.
    BF16: (i: number) => {
      bf16Bits[0] = dv.getUint16(i * 2, le) << 16;
      return bf16Value[0];
    },
    I64: (i: number) => {
      const lo = dv.getUint32(i * 8 + (le ? 0 : 4), le);
      const hi = dv.getInt32(i * 8 + (le ? 4 : 0), le);
      if ((hi === 0 && lo < 0x80000000) || (hi === -1 && lo >= 0x80000000)) return lo | 0;
      throw new CheckpointError(
        `${context}: I64 value ${(BigInt(hi) << 32n) + BigInt(lo)} does not fit in int32`,
      );
    },
    I32: (i: number) => dv.getInt32(i * 4, le),
    I16: (i: number) => dv.getInt16(i * 2, le),
    I8: (i: number) => dv.getInt8(i),
    U8: (i: number) => dv.getUint8(i),
    BOOL: (i: number) => dv.getUint8(i),
  }[dtype];

  // Walk the output in row-major order, carrying a multi-index like an odometer so `src` follows the strides.
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let src = offset;
  for (let j = 0; j < n; j++) {
    out[j] = read(src);
    for (let k = rank - 1; k >= 0; k--) {
      index[k]++;
      src += strides[k];
      if (index[k] < shape[k]) break;
      src -= strides[k] * shape[k];
      index[k] = 0;
    }
  }
  return result;
}

/**
 * Index + 1 of the last element a strided layout reaches (0 for an empty shape): the elements of storage it
 * needs. Computed in floating point, so an absurd layout gives a huge (or infinite) number, never a wrapped one.
 */
export function stridedExtent(shape: readonly number[], strides: readonly number[], offset = 0): number {
  if (shape.some((dim) => dim === 0)) return 0;
  return shape.reduce((acc, dim, k) => acc + (dim - 1) * strides[k], offset) + 1;
}

/** A byte count for messages: "512 bytes", "3.2 MiB", "16 GiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024, u++);
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/**
 * A string read from a file, fit for a one-line message: JSON-quoted when it holds control or other unusual
 * characters, and cut to `max` characters.
 */
export function printable(s: string, max = 120): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return /^[\w.\/:@+-]*$/.test(cut) && cut.length > 0 ? cut : JSON.stringify(cut);
}

/** A path for messages: file URLs are shown as plain paths. */
export function displayPath(path: string | URL): string {
  if (typeof path === "string") return path;
  return path.protocol === "file:" ? decodeURIComponent(path.pathname) : path.href;
}

/** Reads a whole checkpoint file; a missing or unreadable file is a CheckpointError naming the path. */
export async function readCheckpointBytes(path: string | URL): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CheckpointError(`cannot read checkpoint: no such file: ${displayPath(path)}`, { cause: e });
    }
    const why = e instanceof Error ? e.message : String(e);
    throw new CheckpointError(`cannot read checkpoint ${displayPath(path)}: ${why}`, { cause: e });
  }
}
