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
 * the weights costs nothing but its pickle), and anything else the pickle names that we do not know
 * (argparse.Namespace, …) becomes an inert placeholder object instead of a crash.
 */

import { unzipSync } from "fflate";
import { NameRegistry, Parser } from "pickleparser";
import {
  CheckpointError,
  decodeStrided,
  displayPath,
  type DType,
  isIndexList,
  ITEMSIZE,
  readCheckpointBytes,
  type StateDict,
} from "./tensor.ts";

/** A checkpoint read from a .pth file. */
export interface PthCheckpoint {
  /** the weights, in pickle order. */
  stateDict: StateDict;
  /** the other top-level values that hold no tensors (e.g. `epoch`), as plain JS values. */
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

/** Legacy torch.save files start with the pickled magic number 0x1950a86a20f9469cfc6c (protocol 2, LONG1). */
export function isPicklePrefix(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] >= 1 && bytes[1] <= 5;
}

export const LEGACY_FORMAT_MESSAGE =
  "legacy (pre-1.6) torch.save format is not supported; re-save with torch>=1.6 (torch.save writes the zip format)";

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

/** pickleparser marks its placeholder classes with these prototype properties. */
interface Placeholder {
  __module__?: string;
  __name__?: string;
  args?: unknown[];
}

/** Records the qualified name of every global the pickle resolves, so storage classes can be recognized. */
class TorchNames extends NameRegistry {
  readonly names = new WeakMap<object, string>();

  override resolve(module: string, name: string) {
    const resolved = super.resolve(module, name);
    this.names.set(resolved, `${module}.${name}`);
    return resolved;
  }
}

/** A short human-readable description of an unpickled value, for error messages. */
function describe(x: unknown, names?: TorchNames): string {
  if (x instanceof TensorRef) return `tensor ${JSON.stringify(x.shape)}`;
  if (x instanceof StorageRef) return `storage ${x.key}`;
  if (x instanceof Map) return "dict";
  if (Array.isArray(x)) return "tuple/list";
  if (typeof x === "function") return names?.names.get(x) ?? "function";
  if (typeof x === "object" && x !== null) {
    const p = x as Placeholder;
    if (p.__module__) return `${p.__module__}.${p.__name__}(…) (unsupported object)`;
  }
  return typeof x === "string" ? JSON.stringify(x) : String(x);
}

/**
 * Converts an unpickled value to plain JS (dicts → objects, placeholders → `{__class__, …}`), or undefined
 * when it contains tensors or storages (such values are not "plain" and are left out of `extra`).
 */
function toPlain(x: unknown, seen = new Set<object>()): unknown {
  if (x === null || ["number", "string", "boolean", "bigint"].includes(typeof x)) return x;
  if (x instanceof TensorRef || x instanceof StorageRef || typeof x !== "object") return undefined;
  if (x instanceof Uint8Array) return x.slice();
  if (seen.has(x)) return undefined; // pickles may be cyclic
  seen.add(x);
  try {
    if (Array.isArray(x)) {
      const items = x.map((item) => toPlain(item, seen));
      return items.some((item, i) => item === undefined && x[i] !== undefined) ? undefined : items;
    }
    const out: Record<string, unknown> = {};
    const p = x as Placeholder;
    if (!(x instanceof Map) && p.__module__) {
      out.__class__ = `${p.__module__}.${p.__name__}`;
      if (p.args?.length) out.__args__ = toPlain(p.args, seen);
      if (p.args?.length && out.__args__ === undefined) return undefined;
    }
    const entries = x instanceof Map ? [...x.entries()] : Object.entries(x);
    for (const [key, value] of entries) {
      const plain = toPlain(value, seen);
      if (plain === undefined && value !== undefined) return undefined;
      out[String(key)] = plain;
    }
    return out;
  } finally {
    seen.delete(x);
  }
}

function isTensorDict(x: unknown): x is Map<unknown, unknown> {
  return x instanceof Map && [...x.values()].some((v) => v instanceof TensorRef);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parses a torch.save zip checkpoint held in memory. `name` (usually the path) starts every error message;
 * every failure (not a zip, truncated, no data.pkl, missing or short storage, unsupported dtype) is a
 * CheckpointError.
 */
export function parsePth(bytes: Uint8Array, name = "<bytes>"): PthCheckpoint {
  try {
    return parsePthUnguarded(bytes, name);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    // Only a corrupt file that slipped past the checks can get here (e.g. an absurd size in the pickle).
    throw new CheckpointError(`${name}: corrupt checkpoint (${errorText(e)})`, { cause: e });
  }
}

function parsePthUnguarded(bytes: Uint8Array, name: string): PthCheckpoint {
  const fail = (problem: string, cause?: unknown): never => {
    throw new CheckpointError(`${name}: ${problem}`, { cause });
  };
  if (isPicklePrefix(bytes)) fail(LEGACY_FORMAT_MESSAGE);
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)) {
    fail("not a zip archive, so not a PyTorch (torch.save) checkpoint");
  }

  // fflate decompresses whatever its filter accepts: first only the pickle and bookkeeping, later only the
  // storages that the chosen tensors use. It checks little: it clips entries that run past the end of the
  // buffer, and reads a shifted central directory as garbage records. So every entry's length is checked
  // against the size its directory record claims, and a name with control characters (binary read as a
  // name) means the directory is corrupt. (It does not check CRCs either, nor do we.)
  const sizes = new Map<string, number>();
  const corruptDirectory = new Error("corrupt central directory");
  const unzip = (want: (entryName: string) => boolean): Record<string, Uint8Array> => {
    let files: Record<string, Uint8Array>;
    try {
      files = unzipSync(bytes, {
        filter: (f) => {
          // deno-lint-ignore no-control-regex
          if (/[\x00-\x1f\x7f]/.test(f.name)) throw corruptDirectory;
          sizes.set(f.name, f.originalSize);
          return want(f.name);
        },
      });
    } catch (e) {
      return fail(`not a valid zip archive (truncated or corrupt: ${errorText(e)})`, e);
    }
    for (const [entry, data] of Object.entries(files)) {
      const size = sizes.get(entry);
      if (data.length !== size) {
        fail(`zip entry ${entry} holds ${data.length} of its ${size} bytes (truncated?)`);
      }
    }
    return files;
  };

  const meta = unzip((entry) => /^[^/]+\/(data\.pkl|byteorder)$/.test(entry));
  const pklName = Object.keys(meta).find((entry) => entry.endsWith("/data.pkl"));
  if (pklName === undefined) {
    const listing = [...sizes.keys()].slice(0, 5).map((entry) => JSON.stringify(entry)).join(", ");
    return fail(
      `zip archive has no <archive>/data.pkl, so it is not a torch.save checkpoint (entries: ${listing})`,
    );
  }
  const prefix = pklName.slice(0, -"data.pkl".length);
  const byteorderEntry = meta[`${prefix}byteorder`];
  const byteorder = byteorderEntry ? new TextDecoder().decode(byteorderEntry).trim() : "little";
  if (byteorder !== "little" && byteorder !== "big") {
    fail(`unsupported byteorder ${JSON.stringify(byteorder)}`);
  }

  const top = unpickle(meta[pklName], name);
  if (!(top instanceof Map)) return fail(`the pickled object is a ${describe(top)}, not a dict of weights`);

  let source = WEIGHT_KEYS.find((key) => isTensorDict(top.get(key))) as string | undefined;
  if (source === undefined && isTensorDict(top)) source = "root";
  if (source === undefined) {
    const keys = [...top.keys()].map((k) => JSON.stringify(k)).join(", ");
    return fail(
      `no state dict found: top-level keys are [${keys}]; expected tensors at the top level or a dict of them ` +
        `under ${WEIGHT_KEYS.map((k) => `"${k}"`).join(", ")} (a pickled nn.Module is not supported: ` +
        `save model.state_dict())`,
    );
  }
  const weights = (source === "root" ? top : top.get(source)) as Map<unknown, unknown>;

  const extra: Record<string, unknown> = {};
  if (source !== "root") {
    for (const [key, value] of top) {
      if (key === source) continue;
      const plain = toPlain(value);
      if (plain !== undefined || value === undefined) extra[String(key)] = plain;
    }
  }

  const storageName = (s: StorageRef) => `${prefix}data/${s.key}`;
  const wanted = new Set<string>();
  for (const [key, value] of weights) {
    const where = `tensor ${String(key)}`;
    if (typeof key !== "string") fail(`${where}: state-dict key is not a string`);
    if (!(value instanceof TensorRef)) return fail(`${where}: not a tensor but ${describe(value)}`);
    if (value.storage.dtype === undefined) {
      fail(`${where}: unsupported storage type ${value.storage.typeName}`);
    }
    wanted.add(storageName(value.storage));
  }
  const storages = unzip((entry) => wanted.has(entry));

  const stateDict: StateDict = new Map();
  for (const [key, value] of weights as Map<string, TensorRef>) {
    const where = `${name}: tensor ${key}`;
    const { storage } = value;
    const dtype = storage.dtype!;
    const entry = storageName(storage);
    const raw = storages[entry];
    if (raw === undefined) fail(`tensor ${key}: storage entry ${entry} is missing from the zip archive`);
    const declared = storage.numel * ITEMSIZE[dtype];
    if (raw.length < declared) {
      fail(
        `tensor ${key}: storage ${entry} holds ${raw.length} bytes, but the pickle declares ${storage.numel} ` +
          `elements of ${dtype} (${declared} bytes)`,
      );
    }
    stateDict.set(
      key,
      decodeStrided(dtype, raw.subarray(0, declared), value.shape, where, {
        strides: value.strides,
        offset: value.offset,
        littleEndian: byteorder === "little",
      }),
    );
  }
  return { stateDict, extra, source };
}

/**
 * Unpickles data.pkl with pickleparser. Dicts come back as Maps (so a state dict keeps its order, and torch's
 * `_metadata` attribute on OrderedDict does not leak in as a key), tensors as TensorRefs.
 */
function unpickle(pkl: Uint8Array, name: string): unknown {
  const names = new TorchNames();
  const storages = new Map<string, StorageRef>();

  const rebuildTensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef => {
    if (!(storage instanceof StorageRef)) {
      throw new CheckpointError(
        `${name}: a tensor is rebuilt from ${describe(storage, names)}, not a storage`,
      );
    }
    if (
      typeof offset !== "number" || !isIndexList([offset]) || !isIndexList(size) || !isIndexList(stride) ||
      size.length !== stride.length
    ) {
      throw new CheckpointError(
        `${name}: a tensor on storage ${storage.key} has an invalid layout (offset ${describe(offset)}, ` +
          `size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)})`,
      );
    }
    return new TensorRef(storage, offset, size, stride);
  };
  // `function`, not arrows: pickleparser may `new` a global (NEWOBJ) as well as call it (REDUCE).
  names
    .register("collections", "OrderedDict", function (items?: Iterable<[unknown, unknown]>) {
      return new Map(items ?? []);
    })
    .register("torch._utils", "_rebuild_tensor_v2", function (...args: unknown[]) {
      return rebuildTensor(args[0], args[1], args[2], args[3]);
    })
    .register("torch._utils", "_rebuild_tensor", function (...args: unknown[]) {
      return rebuildTensor(args[0], args[1], args[2], args[3]);
    })
    // A Parameter is its data tensor; requires_grad and hooks do not matter for weights.
    .register("torch._utils", "_rebuild_parameter", function (data: unknown) {
      return data;
    })
    .register("torch._utils", "_rebuild_parameter_with_state", function (data: unknown) {
      return data;
    })
    // Tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state) = func(*args) re-typed.
    .register(
      "torch._tensor",
      "_rebuild_from_type_v2",
      function (func: unknown, _type: unknown, args: unknown) {
        return typeof func === "function" && Array.isArray(args) ? func(...args) : undefined;
      },
    );

  const parser = new Parser({
    nameResolver: names,
    persistentResolver: {
      // pickleparser types the id as a string; torch's is a tuple ('storage', type, key, location, numel).
      resolve(pid: unknown) {
        if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
          throw new CheckpointError(`${name}: unsupported persistent id ${describe(pid)} in data.pkl`);
        }
        const [, type, key, , count] = pid;
        if (typeof key !== "string" || typeof count !== "number" || !isIndexList([count])) {
          throw new CheckpointError(
            `${name}: malformed storage id (key ${describe(key)}, numel ${describe(count)})`,
          );
        }
        const typeName = typeof type === "function" ? names.names.get(type) ?? "?" : describe(type);
        let storage = storages.get(key);
        if (storage === undefined) {
          // An unknown storage type only fails if a wanted tensor uses it (see parsePth).
          storage = new StorageRef(key, typeName, STORAGE_DTYPES[typeName], count);
          storages.set(key, storage);
        }
        return storage;
      },
    },
    unpicklingTypeOfDictionary: "Map",
  });
  try {
    return parser.parse(pkl);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${name}: corrupt data.pkl (${errorText(e)})`, { cause: e });
  }
}

/** Reads a torch.save zip checkpoint; see parsePth. A missing file is a CheckpointError naming the path. */
export async function readPth(path: string | URL): Promise<PthCheckpoint> {
  return parsePth(await readCheckpointBytes(path), displayPath(path));
}
