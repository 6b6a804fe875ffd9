/**
 * A minimal reader for MATLAB Level 5 MAT-files (what `save` writes by default up to MATLAB 7.2, and what
 * `scipy.io.loadmat` reads), enough for the annotation files of Oxford Flowers-102 and Stanford Cars.
 *
 * Layout (MathWorks "MAT-File Format", Level 5):
 *   - a 128-byte header: 116 bytes of text ("MATLAB 5.0 MAT-file, ..."), 8 bytes subsystem offset, a 2-byte
 *     version (0x0100) and the endian indicator: the characters "MI" written as a 16-bit integer, so the bytes
 *     read "IM" in a little-endian file and "MI" in a big-endian one; every number after it has that byte order;
 *   - then data elements, each an 8-byte tag (uint32 type, uint32 byte count) and its data padded to 8 bytes, or
 *     a "small" element (1–4 bytes of data packed into the tag: uint16 type, uint16 count, 4 data bytes);
 *   - a top-level element is an miMATRIX (one variable) or an miCOMPRESSED (a zlib stream holding one
 *     miMATRIX, not padded);
 *   - an miMATRIX holds sub-elements: array flags (class, complex/logical bits), dimensions (int32), name
 *     (int8), then by class: numeric -> real part [+ imaginary part] in any numeric storage type (MATLAB stores
 *     doubles as uint8 when they fit); char -> the characters (uint16, utf8, ...); cell -> one miMATRIX per cell;
 *     struct -> field-name length, field names, then one miMATRIX per (element, field), elements in column-major
 *     order. An miMATRIX with no data (byte count 0) is an empty array.
 *
 * Not supported (a DataError says so): sparse arrays, objects, function handles, MATLAB v7.3 files (HDF5) and
 * Level 4 files. Numbers are returned as float64 (int64 values beyond 2^53 lose precision).
 */
import { inflateSync } from "node:zlib";
import { DataError, readRegularFile } from "../dataset.ts";

/** MATLAB array classes (mxCLASS) this reader returns. */
export type MatNumericClass =
  | "double"
  | "single"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64";

/** A numeric (or logical) array; `data` is column-major like MATLAB's storage. */
export interface MatNumeric {
  kind: "numeric";
  class: MatNumericClass;
  dims: number[];
  data: Float64Array;
  /** Imaginary part of a complex array. */
  imag?: Float64Array;
  logical: boolean;
}

/** A char array: `rows[r]` is row r of the character matrix (a 1×n char array is one row: a string). */
export interface MatChar {
  kind: "char";
  dims: number[];
  rows: string[];
}

/** A cell array: `cells` in column-major order. */
export interface MatCell {
  kind: "cell";
  dims: number[];
  cells: MatValue[];
}

/** A struct array: `elements` in column-major order, each mapping every field name to its value. */
export interface MatStruct {
  kind: "struct";
  dims: number[];
  fields: string[];
  elements: Record<string, MatValue>[];
}

export type MatValue = MatNumeric | MatChar | MatCell | MatStruct;

// Data element types (miXXX).
const miINT8 = 1;
const miUINT8 = 2;
const miINT16 = 3;
const miUINT16 = 4;
const miINT32 = 5;
const miUINT32 = 6;
const miSINGLE = 7;
const miDOUBLE = 9;
const miINT64 = 12;
const miUINT64 = 13;
const miMATRIX = 14;
const miCOMPRESSED = 15;
const miUTF8 = 16;
const miUTF16 = 17;
const miUTF32 = 18;

const ELEMENT_SIZE: Record<number, number> = {
  [miINT8]: 1,
  [miUINT8]: 1,
  [miINT16]: 2,
  [miUINT16]: 2,
  [miINT32]: 4,
  [miUINT32]: 4,
  [miSINGLE]: 4,
  [miDOUBLE]: 8,
  [miINT64]: 8,
  [miUINT64]: 8,
  [miUTF8]: 1,
  [miUTF16]: 2,
  [miUTF32]: 4,
};

// Array classes (mxXXX_CLASS).
const mxCELL = 1;
const mxSTRUCT = 2;
const mxCHAR = 4;
const NUMERIC_CLASSES: Record<number, MatNumericClass> = {
  6: "double",
  7: "single",
  8: "int8",
  9: "uint8",
  10: "int16",
  11: "uint16",
  12: "int32",
  13: "uint32",
  14: "int64",
  15: "uint64",
};
const OTHER_CLASSES: Record<number, string> = {
  3: "object",
  5: "sparse",
  16: "function handle",
  17: "opaque",
};

/** A parse failure inside the buffer; turned into a DataError naming the file by {@link parseMat}. */
class MatFormatError extends Error {}

class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly le: boolean) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(pos: number, n: number, what: string): void {
    if (pos < 0 || pos + n > this.bytes.length) {
      throw new MatFormatError(
        `truncated: ${what} needs bytes ${pos}..${pos + n}, the data has ${this.bytes.length}`,
      );
    }
  }

  u32(pos: number): number {
    this.need(pos, 4, "a tag");
    return this.view.getUint32(pos, this.le);
  }

  /** Reads the element tag at `pos`: its type, data range and the position of the next element. */
  tag(pos: number, what: string): { type: number; start: number; size: number; next: number } {
    this.need(pos, 8, `the tag of ${what}`);
    const word = this.view.getUint32(pos, this.le);
    if (word >>> 16 !== 0) {
      // Small data element: type in the low half, byte count in the high half, data in the next 4 bytes.
      const size = word >>> 16;
      if (size > 4) throw new MatFormatError(`bad small element for ${what} (${size} bytes)`);
      return { type: word & 0xffff, start: pos + 4, size, next: pos + 8 };
    }
    const size = this.view.getUint32(pos + 4, this.le);
    const start = pos + 8;
    this.need(start, size, what);
    const padded = word === miCOMPRESSED ? size : Math.ceil(size / 8) * 8;
    return { type: word, start, size, next: Math.min(start + padded, this.bytes.length) };
  }

  /** The numbers of a numeric element (any storage type) as float64. */
  numbers(type: number, start: number, size: number, what: string): Float64Array {
    const width = ELEMENT_SIZE[type];
    if (width === undefined || type === miUTF8 || type === miUTF16 || type === miUTF32) {
      throw new MatFormatError(`${what}: data type ${type} is not numeric`);
    }
    if (size % width !== 0) throw new MatFormatError(`${what}: ${size} bytes is not a multiple of ${width}`);
    const n = size / width;
    const out = new Float64Array(n);
    const v = this.view, le = this.le;
    for (let i = 0; i < n; i++) {
      const p = start + i * width;
      switch (type) {
        case miINT8:
          out[i] = v.getInt8(p);
          break;
        case miUINT8:
          out[i] = v.getUint8(p);
          break;
        case miINT16:
          out[i] = v.getInt16(p, le);
          break;
        case miUINT16:
          out[i] = v.getUint16(p, le);
          break;
        case miINT32:
          out[i] = v.getInt32(p, le);
          break;
        case miUINT32:
          out[i] = v.getUint32(p, le);
          break;
        case miSINGLE:
          out[i] = v.getFloat32(p, le);
          break;
        case miDOUBLE:
          out[i] = v.getFloat64(p, le);
          break;
        case miINT64:
          out[i] = Number(v.getBigInt64(p, le));
          break;
        case miUINT64:
          out[i] = Number(v.getBigUint64(p, le));
          break;
      }
    }
    return out;
  }

  /** Character codes of a char array's data element. */
  chars(type: number, start: number, size: number, what: string): number[] {
    const bytes = this.bytes.subarray(start, start + size);
    if (type === miUTF8) return Array.from(new TextDecoder().decode(bytes), (c) => c.codePointAt(0)!);
    if (type === miUTF16) {
      if (size % 2 !== 0) throw new MatFormatError(`${what}: odd UTF-16 byte count ${size}`);
      const units = Array.from({ length: size / 2 }, (_, i) => this.view.getUint16(start + 2 * i, this.le));
      return Array.from(String.fromCharCode(...units), (c) => c.codePointAt(0)!);
    }
    if (type === miUTF32) return Array.from(this.numbers(miUINT32, start, size, what));
    return Array.from(this.numbers(type, start, size, what));
  }
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Parses one miMATRIX element's data (`start`, `size` from its tag). Returns the variable name and value. */
function parseMatrix(
  r: Reader,
  start: number,
  size: number,
  where: string,
): { name: string; value: MatValue } {
  if (size === 0) {
    return {
      name: "",
      value: { kind: "numeric", class: "double", dims: [0, 0], data: new Float64Array(0), logical: false },
    };
  }
  const end = start + size;
  let pos = start;
  const sub = (what: string) => {
    if (pos >= end) throw new MatFormatError(`${where}: miMATRIX ends before its ${what}`);
    const t = r.tag(pos, `${where} ${what}`);
    if (t.start + t.size > end) {
      throw new MatFormatError(`${where}: ${what} runs past the end of its miMATRIX`);
    }
    pos = t.next;
    return t;
  };

  const flagsTag = sub("array flags");
  if (flagsTag.type !== miUINT32 || flagsTag.size !== 8) {
    throw new MatFormatError(`${where}: bad array flags (type ${flagsTag.type}, ${flagsTag.size} bytes)`);
  }
  const flags = r.u32(flagsTag.start);
  const cls = flags & 0xff;
  const complex = (flags & 0x0800) !== 0;
  const logical = (flags & 0x0200) !== 0;

  const dimsTag = sub("dimensions");
  if (dimsTag.type !== miINT32 || dimsTag.size % 4 !== 0 || dimsTag.size < 8) {
    throw new MatFormatError(
      `${where}: bad dimensions element (type ${dimsTag.type}, ${dimsTag.size} bytes)`,
    );
  }
  const dims = Array.from(r.numbers(miINT32, dimsTag.start, dimsTag.size, `${where} dimensions`));
  if (dims.some((d) => d < 0)) throw new MatFormatError(`${where}: negative dimension in [${dims}]`);
  const count = product(dims);

  const nameTag = sub("name");
  if (nameTag.type !== miINT8 && nameTag.type !== miUINT8 && nameTag.type !== miUTF8) {
    throw new MatFormatError(`${where}: bad array name element (type ${nameTag.type})`);
  }
  const name = new TextDecoder().decode(r.bytes.subarray(nameTag.start, nameTag.start + nameTag.size));
  const label = name === "" ? where : `${where} '${name}'`;

  if (cls in NUMERIC_CLASSES) {
    let data: Float64Array = new Float64Array(0);
    if (!(count === 0 && pos >= end)) { // an empty array may omit its data element
      const real = sub("real part");
      data = r.numbers(real.type, real.start, real.size, label);
    }
    if (data.length !== count) {
      throw new MatFormatError(`${label}: ${data.length} values for dimensions [${dims}]`);
    }
    const value: MatNumeric = { kind: "numeric", class: NUMERIC_CLASSES[cls], dims, data, logical };
    if (complex) {
      const im = sub("imaginary part");
      value.imag = r.numbers(im.type, im.start, im.size, label);
      if (value.imag.length !== count) {
        throw new MatFormatError(`${label}: ${value.imag.length} imaginary values for dimensions [${dims}]`);
      }
    }
    return { name, value };
  }
  if (cls === mxCHAR) {
    // An empty char array may omit its data element.
    const codes = count === 0 && pos >= end ? [] : (() => {
      const t = sub("characters");
      return r.chars(t.type, t.start, t.size, label);
    })();
    if (codes.length !== count) {
      throw new MatFormatError(`${label}: ${codes.length} characters for dimensions [${dims}]`);
    }
    // Column-major: character (row i, column j) is codes[i + j * rowsCount]; higher dimensions fold into columns.
    const nRows = dims[0];
    const nCols = nRows === 0 ? 0 : count / nRows;
    const rows: string[] = [];
    for (let i = 0; i < nRows; i++) {
      let s = "";
      for (let j = 0; j < nCols; j++) s += String.fromCodePoint(codes[i + j * nRows]);
      rows.push(s);
    }
    return { name, value: { kind: "char", dims, rows } };
  }
  if (cls === mxCELL) {
    const cells: MatValue[] = [];
    for (let i = 0; i < count; i++) {
      const t = sub(`cell ${i + 1}`);
      if (t.type !== miMATRIX) {
        throw new MatFormatError(`${label}: cell ${i + 1} is not an miMATRIX (type ${t.type})`);
      }
      cells.push(parseMatrix(r, t.start, t.size, `${label}{${i + 1}}`).value);
    }
    return { name, value: { kind: "cell", dims, cells } };
  }
  if (cls === mxSTRUCT) {
    const lenTag = sub("field name length");
    const fieldLen = r.numbers(lenTag.type, lenTag.start, lenTag.size, `${label} field name length`)[0];
    const namesTag = sub("field names");
    if (!(fieldLen > 0) || namesTag.size % fieldLen !== 0) {
      throw new MatFormatError(
        `${label}: ${namesTag.size} bytes of field names with field name length ${fieldLen}`,
      );
    }
    const fields: string[] = [];
    for (let p = 0; p < namesTag.size; p += fieldLen) {
      const raw = r.bytes.subarray(namesTag.start + p, namesTag.start + p + fieldLen);
      const zero = raw.indexOf(0);
      fields.push(new TextDecoder().decode(zero < 0 ? raw : raw.subarray(0, zero)));
    }
    const elements: Record<string, MatValue>[] = [];
    for (let i = 0; i < count; i++) {
      const element: Record<string, MatValue> = {};
      for (const f of fields) {
        const t = sub(`field ${f} of element ${i + 1}`);
        if (t.type !== miMATRIX) {
          throw new MatFormatError(`${label}(${i + 1}).${f} is not an miMATRIX (type ${t.type})`);
        }
        element[f] = parseMatrix(r, t.start, t.size, `${label}(${i + 1}).${f}`).value;
      }
      elements.push(element);
    }
    return { name, value: { kind: "struct", dims, fields, elements } };
  }
  const what = OTHER_CLASSES[cls] ?? `unknown class ${cls}`;
  throw new MatFormatError(`${label}: ${what} arrays are not supported`);
}

/**
 * Parses the bytes of a Level 5 MAT-file into its variables, by name, in file order.
 *
 * @param name the file name used in error messages.
 * @throws DataError naming `name` for anything that is not a readable Level 5 MAT-file.
 */
export function parseMat(bytes: Uint8Array, name = "<bytes>"): Map<string, MatValue> {
  const bad = (msg: string, cause?: unknown): never => {
    throw new DataError(`${name}: ${msg}`, { path: name, cause });
  };
  if (bytes.length >= 8 && bytes[0] === 0x89 && String.fromCharCode(...bytes.subarray(1, 4)) === "HDF") {
    bad("a MATLAB v7.3 (HDF5) MAT-file; only Level 5 MAT-files are supported (save with -v7 or -v6)");
  }
  if (bytes.length < 128) {
    bad(`not a MATLAB Level 5 MAT-file (${bytes.length} bytes, the header alone has 128)`);
  }
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 116));
  const endian = String.fromCharCode(bytes[126], bytes[127]);
  if (endian !== "IM" && endian !== "MI") {
    const start = text.slice(0, 40);
    const shown = /^[\x20-\x7e]+$/.test(start) ? `; header starts ${JSON.stringify(start)}` : "";
    bad(`not a MATLAB Level 5 MAT-file (no endian indicator "IM"/"MI" at byte 126${shown})`);
  }
  if (text.includes("MATLAB 7.3")) bad("a MATLAB v7.3 (HDF5) MAT-file; only Level 5 MAT-files are supported");
  const le = endian === "IM";
  const version = new DataView(bytes.buffer, bytes.byteOffset + 124, 2).getUint16(0, le);
  if (version !== 0x0100) bad(`unsupported MAT-file version 0x${version.toString(16)}`);

  const vars = new Map<string, MatValue>();
  const top = new Reader(bytes, le);
  let pos = 128;
  let index = 0;
  try {
    while (pos + 8 <= bytes.length) {
      index++;
      const t = top.tag(pos, `variable ${index}`);
      pos = t.next;
      let r = top;
      let m = t;
      if (t.type === miCOMPRESSED) {
        let inflated: Uint8Array;
        try {
          inflated = new Uint8Array(inflateSync(bytes.subarray(t.start, t.start + t.size)));
        } catch (e) {
          throw new MatFormatError(`variable ${index}: corrupt compressed data (${(e as Error).message})`);
        }
        r = new Reader(inflated, le);
        m = r.tag(0, `variable ${index}`);
      }
      if (m.type !== miMATRIX) {
        throw new MatFormatError(`variable ${index}: expected an miMATRIX element, found type ${m.type}`);
      }
      const { name: varName, value } = parseMatrix(r, m.start, m.size, `variable ${index}`);
      vars.set(varName, value);
    }
  } catch (e) {
    if (e instanceof MatFormatError) bad(e.message, e);
    throw e;
  }
  return vars;
}

/**
 * Reads a Level 5 MAT-file.
 *
 * @throws DataError naming `path` when it cannot be read or parsed.
 */
export async function readMat(path: string): Promise<Map<string, MatValue>> {
  return parseMat(await readRegularFile(path, "MAT-file"), path);
}

// ------------------------------------------------------------------------------------------ typed accessors

function fail(file: string, msg: string): never {
  throw new DataError(`${file}: ${msg}`, { path: file });
}

/** Variable `name` of a parsed MAT-file; a DataError naming `file` when it is missing. */
export function matVariable(vars: Map<string, MatValue>, name: string, file: string): MatValue {
  const v = vars.get(name);
  if (v === undefined) {
    const have = [...vars.keys()].join(", ") || "none";
    fail(file, `no variable '${name}' (variables: ${have})`);
  }
  return v;
}

/** The values of a numeric array (column-major), checked to be numeric. */
export function matNumbers(v: MatValue, what: string, file: string): Float64Array {
  if (v.kind !== "numeric") fail(file, `${what} is a ${v.kind} array, expected numbers`);
  return v.data;
}

/** A 1×n (or n×1, or scalar) char array as a string. */
export function matString(v: MatValue, what: string, file: string): string {
  if (v.kind !== "char") fail(file, `${what} is a ${v.kind} array, expected text`);
  if (v.rows.length === 0) return "";
  if (v.rows.length === 1) return v.rows[0];
  if (v.rows.every((r) => r.length === 1)) return v.rows.join(""); // an n×1 column of characters
  fail(file, `${what} is a ${v.dims.join("×")} char matrix, expected one string`);
}

/** A cell array of strings (column-major order). */
export function matStrings(v: MatValue, what: string, file: string): string[] {
  if (v.kind !== "cell") fail(file, `${what} is a ${v.kind} array, expected a cell array of text`);
  return v.cells.map((c, i) => matString(c, `${what}{${i + 1}}`, file));
}
