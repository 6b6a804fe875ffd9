/**
 * Matrix products of the wasm backend through the machine's BLAS (`cblas_sgemm`, called with Deno's FFI on
 * the wasm heap itself — no copies).
 *
 * Why: tfjs-backend-wasm 4.22 runs a plain 2-D matmul through XNNPACK at 13–30 GFLOPS on one core, but a
 * product with `transposeA`/`transposeB` or a batch dimension falls to a generic loop at 1–2.5 GFLOPS, and
 * every call pays XNNPACK's operator set-up (~80 µs, measured: bench/NOTES.md). OpenBLAS (Debian's
 * `libopenblas0`, the library PyTorch uses here) does all three shapes at 170+ GFLOPS on this machine's two
 * cores and a 50×32·32×50 product in a few µs. The values are the same products; only float rounding differs
 * (tests/fast_paths_test.ts compares training runs with and without it).
 *
 * Which library: `DEIT_BLAS` names one (a file name the dynamic loader finds, or a path) or turns it off
 * (`DEIT_BLAS=off`); by default `libopenblas.so.0` on Linux. Without `--allow-ffi`, or when no library loads,
 * the stock kernel stays and `blasStatus()` says why (`deno task doctor` prints it).
 */
import * as tf from "@tensorflow/tfjs";
import { envVar } from "./machine.ts";

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f32", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
} as const;
const OPTIONAL = {
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
} as const;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS & typeof OPTIONAL>["symbols"];

export interface BlasStatus {
  loaded: boolean;
  /** The library and its build (e.g. "libopenblas.so.0: OpenBLAS 0.3.21 … Haswell"), or why none loaded. */
  detail: string;
}

let lib: Lib | null = null;
let status: BlasStatus | null = null;

function defaultCandidates(): string[] {
  return Deno.build.os === "linux" ? ["libopenblas.so.0"] : [];
}

/**
 * The OpenBLAS kernel family this CPU's flags support, for `OPENBLAS_CORETYPE`: "SkylakeX" with AVX-512
 * (F, CD, BW, DQ, VL), "Haswell" with AVX2 + FMA, else undefined. `flags` is /proc/cpuinfo's `flags` line.
 *
 * Why: a DYNAMIC_ARCH OpenBLAS picks its kernels by CPU model number, and a build older than the CPU does not
 * know the model — Debian 12's 0.3.21 takes an Intel Xeon of family 6 model 207 (Emerald Rapids) for a
 * "Prescott" and runs SSE3 kernels, 4× slower on `deit_mini_patch4_28`'s products than its own SkylakeX ones
 * (bench/NOTES.md § Lever 4). The flags say what the CPU can run, whatever its model number.
 */
export function openblasCoreFromFlags(flags: string): string | undefined {
  const has = new Set(flags.trim().split(/\s+/));
  if (["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].every((f) => has.has(f))) return "SkylakeX";
  if (has.has("avx2") && has.has("fma")) return "Haswell";
  return undefined;
}

/**
 * Before OpenBLAS loads: unless `OPENBLAS_CORETYPE` is already set, set it from the CPU's flags (Linux x86-64
 * only). Returns what was set, for the status line.
 */
function chooseOpenblasCore(name: string): string | undefined {
  if (!/openblas/i.test(name) || Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return undefined;
  if (envVar("OPENBLAS_CORETYPE")) return undefined;
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1];
    const core = flags ? openblasCoreFromFlags(flags) : undefined;
    if (core) Deno.env.set("OPENBLAS_CORETYPE", core);
    return core;
  } catch {
    return undefined; // no --allow-read or --allow-env: OpenBLAS detects by itself
  }
}

/** Load the BLAS library once (idempotent); never throws. */
export function loadBlas(): BlasStatus {
  if (status) return status;
  const env = envVar("DEIT_BLAS");
  if (env === "off" || env === "0") return status = { loaded: false, detail: "turned off (DEIT_BLAS=off)" };
  const candidates = env ? [env] : defaultCandidates();
  if (candidates.length === 0) {
    return status = { loaded: false, detail: `no default BLAS on ${Deno.build.os}; name one with DEIT_BLAS` };
  }
  const reasons: string[] = [];
  for (const name of candidates) {
    try {
      const core = chooseOpenblasCore(name);
      const l = Deno.dlopen(name, { ...SYMBOLS, ...OPTIONAL }).symbols;
      const cfg = l.openblas_get_config ? l.openblas_get_config() : null;
      lib = l;
      const build = cfg ? `: ${Deno.UnsafePointerView.getCString(cfg)}` : "";
      const why = core ? ` (OPENBLAS_CORETYPE=${core} from the CPU's flags)` : "";
      return status = { loaded: true, detail: name + build + why };
    } catch (e) {
      reasons.push(`${name}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return status = { loaded: false, detail: reasons.join("; ") };
}

export function blasStatus(): BlasStatus {
  return loadBlas();
}

/** Threads BLAS may use for one product (process-wide; OpenBLAS only). */
export function setBlasThreads(n: number): void {
  if (lib?.openblas_set_num_threads) lib.openblas_set_num_threads(Math.max(1, Math.floor(n)));
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: tf.NamedAttrMap };

const prod = (s: number[]) => s.reduce((a, c) => a * c, 1);

/**
 * `BatchMatMul` on the wasm heap: `[...batch, M, K]·[...batch, K, N]` (either transposed), batch dimensions
 * equal or one side's all 1 (broadcast); any other case goes to `fallback`, the stock kernel.
 */
function makeBatchMatMul(sgemm: Lib["cblas_sgemm"], fallback: tf.KernelFunc) {
  return (args: KernelArgs) => {
    const a = args.inputs.a as tf.TensorInfo, b = args.inputs.b as tf.TensorInfo;
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) {
      return fallback(args as Parameters<tf.KernelFunc>[0]);
    }
    const ra = a.shape.length, rb = b.shape.length;
    const [ar, ac] = a.shape.slice(ra - 2), [br, bc] = b.shape.slice(rb - 2);
    const M = transposeA ? ac : ar, K = transposeA ? ar : ac;
    const N = transposeB ? br : bc, Kb = transposeB ? bc : br;
    if (K !== Kb) {
      throw new Error(
        `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} ` +
          `and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
      );
    }
    const batchShape = tf.broadcast_util.assertAndGetBroadcastShape(
      a.shape.slice(0, -2),
      b.shape.slice(0, -2),
    );
    const batch = prod(batchShape), na = prod(a.shape.slice(0, -2)), nb = prod(b.shape.slice(0, -2));
    if ((na !== batch && na !== 1) || (nb !== batch && nb !== 1)) {
      return fallback(args as Parameters<tf.KernelFunc>[0]);
    }
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([...batchShape, M, N], "float32");
    if (batch * M * N === 0) return out;
    // Views after makeOutput: allocating may grow (and so replace) the heap's buffer.
    const A = backend.typedArrayFromHeap(a), B = backend.typedArrayFromHeap(b);
    const C = backend.typedArrayFromHeap(out);
    if (K === 0) {
      C.fill(0);
      return out;
    }
    const sa = na === 1 ? 0 : ar * ac, sb = nb === 1 ? 0 : br * bc, sc = M * N;
    const ta = transposeA ? TRANS : NO_TRANS, tb = transposeB ? TRANS : NO_TRANS;
    for (let i = 0; i < batch; i++) {
      sgemm(
        ROW_MAJOR,
        ta,
        tb,
        M,
        N,
        K,
        1,
        A.subarray(i * sa, i * sa + ar * ac),
        ac,
        B.subarray(i * sb, i * sb + br * bc),
        bc,
        0,
        C.subarray(i * sc, i * sc + sc),
        N,
      );
    }
    return out;
  };
}

let stock: tf.KernelConfig | undefined;
let active = false;

/** Is `BatchMatMul` of the active backend the BLAS kernel now (so transposes and batches are cheap)? */
export function blasMatMulActive(): boolean {
  return active && tf.getBackend() === "wasm";
}

/**
 * Route the wasm backend's `BatchMatMul` through BLAS (`on`) or back to the stock kernel (`off`). Returns
 * whether BLAS is now in use. Registration is global to this tf instance (this thread).
 */
export function useBlasMatMul(on: boolean): boolean {
  stock ??= tf.getKernel("BatchMatMul", "wasm");
  if (!stock) {
    throw new Error("the wasm backend's BatchMatMul kernel is not registered (import the backend first)");
  }
  const want = on && loadBlas().loaded;
  tf.unregisterKernel("BatchMatMul", "wasm");
  if (want) {
    tf.registerKernel({
      kernelName: "BatchMatMul",
      backendName: "wasm",
      kernelFunc: makeBatchMatMul(lib!.cblas_sgemm, stock.kernelFunc) as tf.KernelFunc,
    });
  } else tf.registerKernel(stock);
  active = want;
  return want;
}
