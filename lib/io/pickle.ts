/**
 * A restricted unpickler: Python's pickle machine (protocols 0–5, the opcodes torch.save and plain data need)
 * that runs no code. Every global a pickle names goes through the caller's `resolve`, which returns the
 * stand-in for an allowed name (a PyGlobal, whose `call` is the caller's own JavaScript) and refuses all others;
 * calling anything but a PyGlobal is an error. The machine is a loop over the opcodes (no recursion, so no
 * nesting depth can overflow the stack), its work is linear in the pickle's length, and every length field is
 * checked against the bytes that remain before anything is read or allocated.
 *
 * Values: None → null, bool → boolean, int → number (bigint beyond 2^53), float → number, str → string,
 * bytes/bytearray → Uint8Array, list → array, tuple → frozen array, dict → Map, set/frozenset → Set, an instance
 * of an allowed plain class → whatever its PyGlobal's `call` makes (usually a PyObject).
 */
import { CheckpointError, printable } from "./tensor.ts";

/** An allowed Python global; `call` (for REDUCE, NEWOBJ, INST, OBJ) builds a value without running anything. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly call?: (args: readonly unknown[]) => unknown,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an allowed plain-data class (argparse.Namespace, …): its class, arguments and state, inert. */
export class PyObject {
  /** what BUILD set (`__setstate__` / `__dict__`), if anything. */
  state: unknown = undefined;
  constructor(readonly cls: string, readonly args: readonly unknown[]) {}
}

export interface UnpickleOptions {
  /** starts every error message (the file). */
  name: string;
  /** what the pickle is, for messages about damage ("data.pkl"). */
  entry: string;
  /** The stand-in for global `module.name`; throws (a CheckpointError naming it) for a name not allowed. */
  resolve(module: string, name: string): unknown;
  /** The object a persistent id (BINPERSID) refers to. */
  persistentLoad(pid: unknown): unknown;
}

/** Integers longer than this (LONG1/LONG4 bytes, text digits) are refused: no checkpoint value needs them. */
export const MAX_INT_BYTES = 256;
/**
 * What one pickle may build, far above what a training checkpoint holds (a DeiT-B with its EMA and optimizer
 * state: some thousands of each), so that memory stays within a few hundred MB whatever the pickle's length:
 * an empty dict costs one opcode byte but ~200 bytes of memory.
 */
export const MAX_CONTAINERS = 2_000_000;
export const MAX_DICTS = 500_000;
export const MAX_MEMO = 1_000_000;
const MAX_LINE = 4096;

const OPNAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

/** A short description of a value for messages (never recursive, never long). */
export function describeValue(x: unknown): string {
  if (x === null) return "None";
  if (x instanceof PyGlobal) return x.qualname;
  if (x instanceof PyObject) return `${printable(x.cls)}(…)`;
  if (x instanceof Map) return "dict";
  if (x instanceof Set) return "set";
  if (x instanceof Uint8Array) return `bytes[${x.length}]`;
  if (Array.isArray(x)) return Object.isFrozen(x) ? `tuple[${x.length}]` : `list[${x.length}]`;
  if (typeof x === "string") return JSON.stringify(x.length > 60 ? `${x.slice(0, 60)}…` : x);
  if (typeof x === "object") return x.constructor?.name ?? "object";
  return String(x);
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const EMPTY_TUPLE: readonly unknown[] = Object.freeze([]);
const asInt = (v: bigint): number | bigint => (v >= -SAFE && v <= SAFE ? Number(v) : v);

/** Unpickles `bytes`; see the module comment. Every failure is a CheckpointError starting with `opts.name`. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  const { name } = opts;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  let opAt = 0;
  let op = 0;
  const fail = (problem: string): never => {
    throw new CheckpointError(`${name}: ${problem}`);
  };
  const bad = (problem: string): never =>
    fail(`corrupt ${opts.entry} (${OPNAMES[op] ?? "opcode"} at byte ${opAt}: ${problem})`);

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const utf8 = new TextDecoder("utf-8", { fatal: true });

  const need = (n: number) => {
    if (n > end - pos) bad(`needs ${n} bytes, but only ${end - pos} remain (truncated?)`);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), pos += 2, dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), pos += 4, dv.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    return v > BigInt(end) ? bad(`declares ${v} bytes, more than the pickle holds`) : Number(v);
  };
  const take = (n: number) => (need(n), pos += n, bytes.subarray(pos - n, pos));
  const line = (): string => {
    const limit = Math.min(end, pos + MAX_LINE);
    let i = pos;
    while (i < limit && bytes[i] !== 0x0a) i++;
    if (i >= limit) bad("no end of line");
    const text = new TextDecoder("latin1").decode(bytes.subarray(pos, i));
    pos = i + 1;
    return text;
  };
  const text = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return bad("a string that is not UTF-8");
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) {
      bad("the stack is empty");
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) {
      bad("the stack is empty");
    }
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) return bad("no MARK");
    return stack.splice(m);
  };
  let containers = 0;
  let dicts = 0;
  /** Counts a new list, tuple or object (or dict or set) against the limits, and returns it. */
  const made = <T>(x: T): T => {
    if (x instanceof Map || x instanceof Set) {
      if (++dicts > MAX_DICTS) {
        fail(`the pickle builds more than ${MAX_DICTS} dicts or sets; refusing to load`);
      }
    } else if (typeof x === "object" && x !== null && ++containers > MAX_CONTAINERS) {
      fail(`the pickle builds more than ${MAX_CONTAINERS} lists, tuples or objects; refusing to load`);
    }
    return x;
  };
  const tuple = (items: unknown[]) => made(Object.freeze(items));
  const list = (): unknown[] => {
    const l = top();
    if (!Array.isArray(l) || Object.isFrozen(l)) bad(`appends to a ${describeValue(l)}, not a list`);
    return l as unknown[];
  };
  const dict = (): Map<unknown, unknown> => {
    const d = top();
    if (!(d instanceof Map)) bad(`sets items of a ${describeValue(d)}, not a dict`);
    return d as Map<unknown, unknown>;
  };
  const parseInt = (digits: string): number | bigint => {
    if (digits.length > MAX_INT_BYTES) bad(`an integer of ${digits.length} digits`);
    if (!/^[+-]?\d+$/.test(digits)) bad(`${JSON.stringify(digits.slice(0, 40))} is not an integer`);
    return asInt(BigInt(digits));
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.length > MAX_INT_BYTES) {
      fail(
        `the pickle holds an integer of ${b.length} bytes, which a checkpoint never needs; refusing to load`,
      );
    }
    if (b.length === 0) return 0;
    let hexDigits = "";
    for (let i = b.length - 1; i >= 0; i--) hexDigits += b[i].toString(16).padStart(2, "0");
    let v = BigInt(`0x${hexDigits}`);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return asInt(v);
  };
  const global = (module: string, qualname: string): unknown => opts.resolve(module, qualname);
  const call = (f: unknown, args: unknown, how: string): unknown => {
    if (!(f instanceof PyGlobal)) {
      return bad(`${how} of ${describeValue(f)}, which is not a class or function`);
    }
    if (!Array.isArray(args)) return bad(`${how} of ${f.qualname} with arguments that are not a tuple`);
    if (f.call === undefined) {
      return fail(`the pickle calls ${f.qualname}, which is not callable here; refusing to load`);
    }
    return made(f.call(args));
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) bad(`memo entry ${i} is not set`);
    return memo.get(i);
  };
  const memoPut = (i: number) => {
    memo.set(i, top());
    if (memo.size > MAX_MEMO) fail(`the pickle memoizes more than ${MAX_MEMO} values; refusing to load`);
  };

  while (true) {
    opAt = pos;
    if (pos >= end) fail(`corrupt ${opts.entry}: it ends before its STOP opcode (truncated?)`);
    op = bytes[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) bad(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: // FRAME: a length prefix only
        if (u64() > end - pos) bad("frame longer than the pickle");
        break;
      case 0x2e: // STOP
        if (stack.length === 0) bad("the stack is empty");
        return stack[stack.length - 1];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b:
        stack.push(u8());
        break;
      case 0x4d:
        stack.push(u16());
        break;
      case 0x49: { // INT (text), also protocol 0's True/False
        const s = line();
        stack.push(s === "01" ? true : s === "00" ? false : parseInt(s));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(parseInt(line().replace(/L$/, "")));
        break;
      case 0x8a: // LONG1
        stack.push(long(take(u8())));
        break;
      case 0x8b: { // LONG4
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) bad(`negative length ${n}`);
        stack.push(long(take(n)));
        break;
      }
      case 0x46: { // FLOAT (text)
        const s = line().trim();
        const v = Number(s);
        if (s === "" || (Number.isNaN(v) && !/^[+-]?nan$/i.test(s))) {
          bad(`${JSON.stringify(s.slice(0, 40))} is not a float`);
        }
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(take(u64())));
        break;
      case 0x54: { // BINSTRING (Python 2 str): latin-1
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) bad(`negative length ${n}`);
        stack.push(new TextDecoder("latin1").decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(EMPTY_TUPLE);
        break;
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: { // TUPLE1..3
        const n = op - 0x84;
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(tuple(items));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push(made([]));
        break;
      case 0x6c: // LIST
        stack.push(made(popMark()));
        break;
      case 0x61: { // APPEND
        const v = pop();
        list().push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = list();
        for (const v of items) l.push(v);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(made(new Map()));
        break;
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) bad("an odd number of items");
        const d = made(new Map());
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        dict().set(k, v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) bad("an odd number of items");
        const d = dict();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(made(new Set()));
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) bad(`adds items to a ${describeValue(s)}, not a set`);
        for (const v of items) (s as Set<unknown>).add(v);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(made(new Set(popMark())));
        break;
      case 0x67: // GET (text)
        stack.push(memoGet(Number(parseInt(line()))));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x70: // PUT (text)
        memoPut(Number(parseInt(line())));
        break;
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const qualname = pop();
        const module = pop();
        if (typeof module !== "string" || typeof qualname !== "string") {
          bad("module and name are not strings");
        }
        stack.push(global(module as string, qualname as string));
        break;
      }
      case 0x69: { // INST
        const module = line();
        const cls = global(module, line());
        stack.push(call(cls, popMark(), "INST"));
        break;
      }
      case 0x6f: { // OBJ
        const [cls, ...args] = popMark();
        stack.push(call(cls, args, "OBJ"));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args, "NEWOBJ"));
        break;
      }
      case 0x92: { // NEWOBJ_EX (keyword arguments are ignored: no allowed class takes any)
        pop();
        const args = pop();
        stack.push(call(pop(), args, "NEWOBJ_EX"));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        stack.push(call(pop(), args, "REDUCE"));
        break;
      }
      case 0x62: { // BUILD: state for an allowed plain object; ignored for anything else (OrderedDict metadata)
        const state = pop();
        const obj = top();
        if (obj instanceof PyObject) obj.state = state;
        break;
      }
      case 0x51: // BINPERSID
        stack.push(opts.persistentLoad(pop()));
        break;
      case 0x82:
      case 0x83:
      case 0x84:
        fail(
          "the pickle uses the copyreg extension registry (EXT opcodes), which a weights file never needs; refusing to load",
        );
        break;
      case 0x98: // READONLY_BUFFER: a no-op on our values
        top();
        break;
      default:
        if (OPNAMES[op]) {
          const opname = OPNAMES[op];
          fail(
            `the pickle uses opcode ${opname} at byte ${opAt}, which torch.save never writes; refusing to load`,
          );
        }
        bad(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`);
    }
  }
}
