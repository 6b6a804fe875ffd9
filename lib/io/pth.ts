/**
 * PyTorch `torch.save` checkpoints in the zip format (torch ≥ 1.6), the layout of the official DeiT release
 * files. The zip holds, under one top-level folder whose name varies (`archive/`, the file stem, …):
 *
 *   data.pkl        the pickled object; every tensor storage in it is a persistent id
 *                   ('storage', torch.FloatStorage, key, location, numel) referring to …
 *   data/<key>      … the raw storage bytes (little-endian unless `byteorder` says "big")
 *   version, byteorder, .data/…   bookkeeping
 *
 * Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`, so one storage can
 * back several tensors, at an offset and with arbitrary strides; reading gathers each into a contiguous
 * row-major HostTensor. Only the tensors of the chosen state dict are decoded (an optimizer state next to
 * the weights costs nothing but its pickle).
 *
 * A checkpoint is untrusted input, and reading one costs time and memory in proportion to the file, runs
 * nothing, and never returns other weights than the file holds:
 * - the zip is read strictly (zip.ts): directory checked against the file, duplicates and overlaps refused,
 *   every entry read CRC-checked, a deflated entry inflated only up to its declared size and within a budget;
 * - the pickle runs on a restricted machine (pickle.ts) that knows only the globals of ALLOWED_GLOBALS below
 *   (torch's tensor rebuilders, storage types and dtypes, OrderedDict, and plain-data classes that training
 *   scripts save, such as argparse.Namespace, which become inert PyObjects); any other global (os.system,
 *   builtins.eval, …), wherever it sits in the pickle, refuses the file by name;
 * - every tensor's layout is checked against its storage's declared size, and every storage's declared size
 *   against its zip entry, before anything is decoded; what the tensors decode to is bounded by their storages'
 *   bytes, so a broadcast view cannot turn a few bytes into gigabytes;
 * - the values beside the weights (`extra`) are converted with a depth limit and a budget of items, so shared
 *   references cannot expand exponentially.
 */

import { describeValue, PyGlobal, PyObject, unpickle } from "./pickle.ts";
import {
  CheckpointError,
  decodeStrided,
  displayPath,
  type DType,
  formatBytes,
  isIndexList,
  ITEMSIZE,
  numel,
  printable,
  readCheckpointBytes,
  type StateDict,
  stridedExtent,
} from "./tensor.ts";
import { ZipArchive } from "./zip.ts";

/** A checkpoint read from a .pth file. */
export interface PthCheckpoint {
  /** the weights, in pickle order. */
  stateDict: StateDict;
  /**
   * the other top-level values that hold no tensors (e.g. `epoch`), as plain JS values: dicts become objects,
   * instances of allowed classes `{__class__, [__args__], …state}`, allowed globals `{__global__: name}`.
   */
  extra: Record<string, unknown>;
  /** where the weights were found: "model", "state_dict", "model_ema", or "root" for a bare state dict. */
  source: string;
}

/** Top-level keys that may hold the weights, in order of preference. */
const WEIGHT_KEYS = ["model", "state_dict", "model_ema"] as const;

/** torch's storage classes as pickled by name, and the dtype of their elements. */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  "torch.FloatStorage": "F32",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
  "torch.DoubleStorage": "F64",
  "torch.LongStorage": "I64",
  "torch.IntStorage": "I32",
  "torch.ShortStorage": "I16",
  "torch.CharStorage": "I8",
  "torch.ByteStorage": "U8",
  "torch.BoolStorage": "BOOL",
  // torch loads an untyped storage as bytes (uint8), so do we.
  "torch.UntypedStorage": "U8",
  "torch.storage.UntypedStorage": "U8",
};

/** Storage classes torch may name that we do not decode: allowed (an optimizer may hold them), never used. */
const OTHER_STORAGES = [
  "ComplexFloatStorage",
  "ComplexDoubleStorage",
  "QInt8Storage",
  "QUInt8Storage",
  "QInt32Storage",
  "QUInt4x2Storage",
  "QUInt2x4Storage",
].map((s) => `torch.${s}`);

/** torch dtypes (pickled as globals, e.g. in optimizer or AMP state). */
const TORCH_DTYPES = [
  "float32",
  "float",
  "float64",
  "double",
  "float16",
  "half",
  "bfloat16",
  "int64",
  "long",
  "int32",
  "int",
  "int16",
  "short",
  "int8",
  "uint8",
  "bool",
  "complex64",
  "complex128",
].map((s) => `torch.${s}`);

/**
 * Plain-data classes that training scripts put beside the weights; an instance becomes an inert PyObject (its
 * class name, constructor arguments and state), and nothing of the class runs.
 */
const PLAIN_CLASSES = [
  "argparse.Namespace",
  "torch.device",
  "torch.Tensor",
  "torch.nn.parameter.Parameter",
  "torch.torch_version.TorchVersion",
  "torch._utils._rebuild_qtensor",
  "torch._utils._rebuild_sparse_tensor",
  "torch._utils._rebuild_meta_tensor_no_storage",
  "torch._utils._rebuild_wrapper_subclass",
  "torch._utils._rebuild_device_tensor_from_numpy",
  "torch._utils._rebuild_nested_tensor",
  "numpy.dtype",
  "numpy.ndarray",
  "numpy.core.multiarray.scalar",
  "numpy.core.multiarray._reconstruct",
  "numpy._core.multiarray.scalar",
  "numpy._core.multiarray._reconstruct",
  "pathlib.Path",
  "pathlib.PosixPath",
  "pathlib.WindowsPath",
  "pathlib.PurePosixPath",
  "pathlib.PureWindowsPath",
  "datetime.datetime",
  "datetime.date",
  "datetime.time",
  "datetime.timedelta",
  "builtins.slice",
  "builtins.complex",
  "builtins.range",
  "builtins.object",
  "builtins.list",
  "builtins.dict",
  "builtins.tuple",
  "builtins.int",
  "builtins.float",
  "builtins.str",
  "builtins.bool",
  "copyreg._reconstructor",
];

/** Legacy torch.save files start with the pickled magic number 0x1950a86a20f9469cfc6c (protocol 2, LONG1). */
export function isPicklePrefix(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] >= 1 && bytes[1] <= 5;
}

export const LEGACY_FORMAT_MESSAGE =
  "legacy (pre-1.6) torch.save format is not supported; re-save with torch>=1.6 (torch.save writes the zip format)";

/** The items (values and containers) that `extra` may expand to, beyond the pickle's own length in bytes. */
const EXTRA_ITEMS = 100_000;
/** How deeply the values beside the weights may nest. */
const EXTRA_DEPTH = 100;
/** Deflated entries may inflate to this much more than the file's size in all (torch writes them stored). */
const INFLATE_SLACK = 64 << 20;
const INFLATE_RATIO = 16;
/**
 * What the chosen tensors may decode to: 4 bytes per stored byte (a U8 storage becomes Int32Array) plus this
 * slack for small broadcast views.
 */
const DECODE_SLACK = 64 << 20;

/** A storage named by a persistent id; its bytes are fetched from the zip only if a wanted tensor uses it. */
class StorageRef {
  constructor(
    readonly key: string,
    readonly typeName: string,
    readonly dtype: DType | undefined,
    /** element count the pickle declares (bytes for an untyped storage). */
    readonly numel: number,
  ) {}
}

/** A tensor view of a storage, as `_rebuild_tensor_v2` describes it; decoded on demand. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

/** A short human-readable description of an unpickled value, for error messages. */
function describe(x: unknown): string {
  if (x instanceof TensorRef) return `tensor ${dims(x.shape)}`;
  if (x instanceof StorageRef) return `storage ${printable(x.key)}`;
  if (x instanceof PyObject) return `${printable(x.cls)}(…) (unsupported object)`;
  return describeValue(x);
}

/**
 * Converts the values beside the weights to plain JS (see PthCheckpoint.extra). A value that contains tensors
 * or storages is not plain: undefined. Refuses (CheckpointError) values nested deeper than EXTRA_DEPTH or that
 * expand to more items than the budget, which only shared references (memo, DUP) can make a pickle do.
 */
class Plain {
  private left: number;
  constructor(private readonly fail: (problem: string) => never, budget: number) {
    this.left = budget;
  }

  convert(x: unknown, where: string, depth = 0): unknown {
    if (--this.left < 0) {
      this.fail(
        `the values beside the weights expand to more than ${EXTRA_ITEMS} items (shared references?), ` +
          `under ${where}; refusing to load`,
      );
    }
    const type = typeof x;
    if (x === null || type === "number" || type === "string" || type === "boolean" || type === "bigint") {
      return x;
    }
    if (x instanceof TensorRef || x instanceof StorageRef || typeof x !== "object") return undefined;
    if (x instanceof Uint8Array) return x.slice();
    if (x instanceof PyGlobal) return { __global__: x.qualname };
    if (depth >= EXTRA_DEPTH) {
      this.fail(`the value under ${where} is nested more than ${EXTRA_DEPTH} levels deep; refusing to load`);
    }
    const items = (xs: Iterable<unknown>): unknown[] | undefined => {
      const out: unknown[] = [];
      for (const item of xs) {
        const plain = this.convert(item, where, depth + 1);
        if (plain === undefined) return undefined;
        out.push(plain);
      }
      return out;
    };
    if (Array.isArray(x) || x instanceof Set) return items(x);
    const out: Record<string, unknown> = {};
    const put = (key: unknown, value: unknown): boolean => {
      const plain = this.convert(value, where, depth + 1);
      if (plain === undefined) return false;
      // defineProperty: a key "__proto__" is a key like any other.
      Object.defineProperty(out, String(key), {
        value: plain,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      return true;
    };
    if (x instanceof Map) {
      for (const [key, value] of x) if (!put(key, value)) return undefined;
      return out;
    }
    if (x instanceof PyObject) {
      out.__class__ = x.cls;
      if (x.args.length > 0 && !put("__args__", x.args)) return undefined;
      // State: a dict (the instance's __dict__), a (dict, slots) pair, or anything else.
      const state = x.state;
      const dicts = state instanceof Map
        ? [state]
        : Array.isArray(state) && state.length === 2 && state.every((s) => s === null || s instanceof Map)
        ? state.filter((s) => s !== null)
        : [];
      if (dicts.length > 0) {
        for (const d of dicts) for (const [key, value] of d) if (!put(key, value)) return undefined;
      } else if (state !== undefined && !put("__state__", state)) return undefined;
      return out;
    }
    return undefined;
  }
}

function isTensorDict(x: unknown): x is Map<unknown, unknown> {
  if (!(x instanceof Map)) return false;
  for (const v of x.values()) if (v instanceof TensorRef) return true;
  return false;
}

/** A shape or stride list for a message, cut after 8 entries. */
function dims(xs: readonly number[]): string {
  return xs.length > 8 ? `[${xs.slice(0, 8).join(",")},… (${xs.length} dims)]` : JSON.stringify(xs);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parses a torch.save zip checkpoint held in memory. `name` (usually the path) starts every error message;
 * every failure (not a zip, truncated, corrupt or doctored archive, a pickle that names a global outside the
 * allow-list, no data.pkl, missing or short storage, unsupported dtype, a tensor larger than its data) is a
 * CheckpointError.
 */
export function parsePth(bytes: Uint8Array, name = "<bytes>"): PthCheckpoint {
  try {
    return parsePthUnguarded(bytes, name);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    // Only a corrupt file that slipped past the checks can get here.
    throw new CheckpointError(`${name}: corrupt checkpoint (${errorText(e)})`, { cause: e });
  }
}

function parsePthUnguarded(bytes: Uint8Array, name: string): PthCheckpoint {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${name}: ${problem}`);
  };
  if (isPicklePrefix(bytes)) fail(LEGACY_FORMAT_MESSAGE);
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)) {
    fail("not a zip archive, so not a PyTorch (torch.save) checkpoint");
  }
  const zip = new ZipArchive(bytes, name);

  // What the entries we read may inflate to in all (stored entries count nothing: their bytes are the file's).
  let inflateLeft = INFLATE_RATIO * bytes.length + INFLATE_SLACK;
  const read = (entryName: string): Uint8Array => {
    const entry = zip.entries.get(entryName)!;
    if (entry.method !== 0) {
      inflateLeft -= entry.size;
      if (inflateLeft < 0) {
        const [from, to, file] = [entry.compressedSize, entry.size, bytes.length].map(formatBytes);
        const what = `zip entry ${printable(entryName)}`;
        fail(`${what} would inflate ${from} to ${to}, more than a ${file} checkpoint can need; refusing`);
      }
    }
    return zip.read(entryName);
  };

  const pkls = [...zip.entries.keys()].filter((entry) => /^[^/]+\/data\.pkl$/.test(entry));
  if (pkls.length === 0) {
    const listing = [...zip.entries.keys()].slice(0, 5).map((entry) => printable(entry)).join(", ");
    return fail(
      `zip archive has no <archive>/data.pkl, so it is not a torch.save checkpoint (entries: ${listing})`,
    );
  }
  if (pkls.length > 1) fail(`zip archive holds ${pkls.length} data.pkl (${pkls.slice(0, 3).join(", ")}…)`);
  const pklName = pkls[0];
  const prefix = pklName.slice(0, -"data.pkl".length);
  const byteorderName = `${prefix}byteorder`;
  let byteorder = "little";
  if (zip.entries.has(byteorderName)) {
    if (zip.entries.get(byteorderName)!.size > 64) fail(`${byteorderName} is not a byte order`);
    byteorder = new TextDecoder().decode(read(byteorderName)).trim();
  }
  if (byteorder !== "little" && byteorder !== "big") {
    fail(`unsupported byteorder ${printable(byteorder)}`);
  }

  const pkl = read(pklName);
  const top = unpickleCheckpoint(pkl, name);
  if (!(top instanceof Map)) return fail(`the pickled object is a ${describe(top)}, not a dict of weights`);

  let source = WEIGHT_KEYS.find((key) => isTensorDict(top.get(key))) as string | undefined;
  if (source === undefined && isTensorDict(top)) source = "root";
  if (source === undefined) {
    const keys = [...top.keys()].slice(0, 10).map(describe).join(", ");
    return fail(
      `no state dict found: top-level keys are [${keys}${top.size > 10 ? ", …" : ""}]; expected tensors at ` +
        `the top level or a dict of them under ${WEIGHT_KEYS.map((k) => `"${k}"`).join(", ")} (a pickled ` +
        `nn.Module is not supported: save model.state_dict())`,
    );
  }
  const weights = (source === "root" ? top : top.get(source)) as Map<unknown, unknown>;

  const extra: Record<string, unknown> = {};
  if (source !== "root") {
    const plain = new Plain(fail, EXTRA_ITEMS + pkl.length);
    for (const [key, value] of top) {
      if (key === source) continue;
      const converted = plain.convert(value, `top-level key ${describe(key)}`);
      if (converted !== undefined || value === undefined) {
        Object.defineProperty(extra, String(key), {
          value: converted,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    }
  }

  // Check everything against the pickle's declarations and the archive before reading or decoding any storage.
  const storageName = (s: StorageRef) => `${prefix}data/${s.key}`;
  const tensors: [string, TensorRef][] = [];
  const used = new Set<StorageRef>();
  let decodedBytes = 0;
  let largest: [string, TensorRef, number] | undefined;
  for (const [key, value] of weights) {
    if (typeof key !== "string") fail(`a state-dict key is not a string but ${describe(key)}`);
    const where = `tensor ${printable(key as string)}`;
    if (!(value instanceof TensorRef)) return fail(`${where}: not a tensor but ${describe(value)}`);
    const { storage, shape, strides, offset } = value;
    if (storage.dtype === undefined) {
      fail(`${where}: unsupported storage type ${printable(storage.typeName)}`);
    }
    const extent = stridedExtent(shape, strides, offset);
    if (extent > storage.numel) {
      const layout = `shape ${dims(shape)} with strides ${dims(strides)} at offset ${offset}`;
      fail(
        `${where}: ${layout} needs ${extent} elements of ${storage.dtype}, but its storage holds only ${storage.numel}`,
      );
    }
    const size = numel(shape) * (storage.dtype === "BOOL" ? 1 : 4);
    decodedBytes += size;
    if (largest === undefined || size > largest[2]) largest = [key as string, value, size];
    tensors.push([key as string, value]);
    used.add(storage);
  }
  let storageBytes = 0;
  for (const storage of used) {
    const entry = storageName(storage);
    const info = zip.entries.get(entry);
    if (info === undefined) fail(`storage entry ${printable(entry)} is missing from the zip archive`);
    const declared = storage.numel * ITEMSIZE[storage.dtype!];
    if (info!.size < declared) {
      fail(
        `storage ${printable(entry)} holds ${info!.size} bytes, but the pickle declares ${storage.numel} ` +
          `elements of ${storage.dtype} (${declared} bytes)`,
      );
    }
    storageBytes += declared;
  }
  if (largest && decodedBytes > 4 * storageBytes + DECODE_SLACK) {
    const [key, t, size] = largest;
    const held = formatBytes(storageBytes);
    fail(
      `tensor ${printable(key)}: shape ${dims(t.shape)} (strides ${dims(t.strides)}) would decode to ` +
        `${formatBytes(size)}, far more than the ${held} its checkpoint's storages hold; refusing to load`,
    );
  }

  const raw = new Map<StorageRef, Uint8Array>();
  const stateDict: StateDict = new Map();
  for (const [key, t] of tensors) {
    const { storage } = t;
    const dtype = storage.dtype!;
    let data = raw.get(storage);
    if (data === undefined) {
      data = read(storageName(storage)).subarray(0, storage.numel * ITEMSIZE[dtype]);
      raw.set(storage, data);
    }
    stateDict.set(
      key,
      decodeStrided(dtype, data, t.shape, `${name}: tensor ${printable(key)}`, {
        strides: t.strides,
        offset: t.offset,
        littleEndian: byteorder === "little",
      }),
    );
  }
  return { stateDict, extra, source };
}

/**
 * Unpickles data.pkl on the restricted machine with this module's allow-list. Dicts come back as Maps (so a
 * state dict keeps its order, and torch's `_metadata` attribute on OrderedDict does not leak in as a key),
 * tensors as TensorRefs.
 */
function unpickleCheckpoint(pkl: Uint8Array, name: string): unknown {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${name}: ${problem}`);
  };
  const storages = new Map<string, StorageRef>();

  const rebuildTensor = (args: readonly unknown[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof StorageRef)) {
      return fail(`a tensor is rebuilt from ${describe(storage)}, not a storage`);
    }
    if (
      typeof offset !== "number" || !isIndexList([offset]) || !isIndexList(size) || !isIndexList(stride) ||
      size.length !== stride.length
    ) {
      return fail(
        `a tensor on storage ${printable(storage.key)} has an invalid layout (offset ${describe(offset)}, ` +
          `size ${describe(size)}, stride ${describe(stride)})`,
      );
    }
    return new TensorRef(storage, offset, [...size], [...stride]);
  };

  const allowed = new Map<string, PyGlobal>();
  const allow = (qualname: string, call?: (args: readonly unknown[]) => unknown) => {
    const dot = qualname.lastIndexOf(".");
    allowed.set(qualname, new PyGlobal(qualname.slice(0, dot), qualname.slice(dot + 1), call));
  };
  const inert = (qualname: string) => allow(qualname, (args) => new PyObject(qualname, args));
  for (const c of PLAIN_CLASSES) inert(c);
  for (const s of [...Object.keys(STORAGE_DTYPES), ...OTHER_STORAGES, ...TORCH_DTYPES]) allow(s);
  allow("collections.OrderedDict", (args) => {
    const items = args[0] ?? [];
    if (!Array.isArray(items) || !items.every((kv) => Array.isArray(kv) && kv.length === 2)) {
      return fail(`collections.OrderedDict is built from ${describe(items)}, not (key, value) pairs`);
    }
    return new Map(items as [unknown, unknown][]);
  });
  allow("collections.defaultdict", () => new Map());
  allow(
    "torch.Size",
    (args) => (Array.isArray(args[0]) ? Object.freeze([...args[0]]) : new PyObject("torch.Size", args)),
  );
  allow("builtins.set", (args) => new Set(Array.isArray(args[0]) ? args[0] : []));
  allow("builtins.frozenset", (args) => new Set(Array.isArray(args[0]) ? args[0] : []));
  // Protocol 2 pickles bytes as _codecs.encode(str, "latin1"), and bytearray likewise.
  const encode = (args: readonly unknown[]) => {
    const [s, encoding] = args;
    if (args.length === 0) return new Uint8Array(0);
    if (s instanceof Uint8Array || (Array.isArray(s) && s.every((b) => Number.isInteger(b)))) {
      return Uint8Array.from(s as ArrayLike<number>);
    }
    if (typeof s !== "string") return fail(`bytes are encoded from ${describe(s)}`);
    if (encoding === "latin1" || encoding === "latin-1") {
      return Uint8Array.from(s, (ch) => ch.charCodeAt(0) & 0xff);
    }
    return new TextEncoder().encode(s);
  };
  allow("_codecs.encode", encode);
  allow("builtins.bytearray", encode);
  allow("builtins.bytes", encode);
  allow("torch._utils._rebuild_tensor_v2", rebuildTensor);
  allow("torch._utils._rebuild_tensor", rebuildTensor);
  // A Parameter is its data tensor; requires_grad and hooks do not matter for weights.
  allow("torch._utils._rebuild_parameter", (args) => args[0]);
  allow("torch._utils._rebuild_parameter_with_state", (args) => args[0]);
  // Tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state) = func(*args) re-typed; func is an
  // allowed global like any other (so never os.system), called through its stand-in.
  allow("torch._tensor._rebuild_from_type_v2", (args) => {
    const [func, , funcArgs] = args;
    if (!(func instanceof PyGlobal) || func.call === undefined || !Array.isArray(funcArgs)) {
      return fail(`torch._tensor._rebuild_from_type_v2 applies ${describe(func)} to ${describe(funcArgs)}`);
    }
    return func.call(funcArgs);
  });

  return unpickle(pkl, {
    name,
    entry: "data.pkl",
    resolve(module, qualname) {
      const full = `${module}.${qualname}`;
      const g = allowed.get(full);
      if (g === undefined) {
        fail(`pickle references ${printable(full)}, which a weights file never needs; refusing to load`);
      }
      return g;
    },
    // torch's persistent id: ('storage', storage type, key, location, numel).
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
        return fail(`unsupported persistent id ${describe(pid)} in data.pkl`);
      }
      const [, type, key, , count] = pid;
      if (typeof key !== "string" || typeof count !== "number" || !isIndexList([count])) {
        return fail(`malformed storage id (key ${describe(key)}, numel ${describe(count)})`);
      }
      const typeName = type instanceof PyGlobal ? type.qualname : describe(type);
      const storage = storages.get(key);
      if (storage === undefined) {
        // An unknown storage type only fails if a wanted tensor uses it (see parsePth).
        const created = new StorageRef(key, typeName, STORAGE_DTYPES[typeName], count);
        storages.set(key, created);
        return created;
      }
      if (storage.typeName !== typeName || storage.numel !== count) {
        const [first, second] = [printable(storage.typeName), printable(typeName)];
        fail(
          `storage ${printable(key)} is declared twice, as ${first} of ${storage.numel} and as ${second} ` +
            `of ${count}`,
        );
      }
      return storage;
    },
  });
}

/** Reads a torch.save zip checkpoint; see parsePth. A missing file is a CheckpointError naming the path. */
export async function readPth(path: string | URL): Promise<PthCheckpoint> {
  return parsePth(await readCheckpointBytes(path), displayPath(path));
}
