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
import { envVar } from "../base/machine.ts";
import type { AttentionShape, KernelArgs, WasmBackendLike } from "./kernel.ts";

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
 * (bench/NOTES.md § Lever 5). The flags say what the CPU can run, whatever its model number.
 */
export function openblasCoreFromFlags(flags: string): string | undefined {
  const has = new Set(flags.trim().split(/\s+/));
  if (["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].every((f) => has.has(f))) return "SkylakeX";
  if (has.has("avx2") && has.has("fma")) return "Haswell";
  return undefined;
}

/** {@link openblasCoreFromFlags} for this machine's CPU (Linux x86-64; else, or unreadable, undefined). */
export function cpuOpenblasCore(): string | undefined {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return undefined;
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1];
    return flags ? openblasCoreFromFlags(flags) : undefined;
  } catch {
    return undefined; // no --allow-read: OpenBLAS detects by itself
  }
}

/**
 * Before OpenBLAS loads: unless `OPENBLAS_CORETYPE` is already set, set it from the CPU's flags. Returns what
 * was set, for the status line.
 */
function chooseOpenblasCore(name: string): string | undefined {
  if (!/openblas/i.test(name) || envVar("OPENBLAS_CORETYPE")) return undefined;
  const core = cpuOpenblasCore();
  if (!core) return undefined;
  try {
    Deno.env.set("OPENBLAS_CORETYPE", core);
    return core;
  } catch {
    return undefined; // no --allow-env
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

/** A float32 tensor's view of the heap (every tensor these kernels touch is float32). */
const floats = (backend: WasmBackendLike, t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;

const prod = (s: number[]) => s.reduce((a, c) => a * c, 1);

type Gemm = (
  ta: number,
  tb: number,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  C: Float32Array,
  ldc: number,
) => void;

/** C = alpha·op(A)·op(B), row-major (beta 0). */
function gemmOf(sgemm: Lib["cblas_sgemm"]): Gemm {
  return (ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc) =>
    sgemm(ROW_MAJOR, ta, tb, M, N, K, alpha, A, lda, B, ldb, 0, C, ldc);
}

/**
 * `BatchMatMul` on the wasm heap: `[...batch, M, K]·[...batch, K, N]` (either transposed), batch dimensions
 * equal or one side's all 1 (broadcast); any other case goes to `fallback`, the stock kernel.
 */
function makeBatchMatMul(gemm: Gemm, fallback: tf.KernelFunc) {
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
    const A = floats(backend, a), B = floats(backend, b);
    const C = floats(backend, out);
    if (K === 0) {
      C.fill(0);
      return out;
    }
    const sa = na === 1 ? 0 : ar * ac, sb = nb === 1 ? 0 : br * bc, sc = M * N;
    const ta = transposeA ? TRANS : NO_TRANS, tb = transposeB ? TRANS : NO_TRANS;
    for (let i = 0; i < batch; i++) {
      const ai = A.subarray(i * sa, i * sa + ar * ac), bi = B.subarray(i * sb, i * sb + br * bc);
      gemm(ta, tb, M, N, K, 1, ai, ac, bi, bc, C.subarray(i * sc, i * sc + sc), N);
    }
    return out;
  };
}

// ------------------------------------------------------------------------------- attention on qkv in place

/**
 * Attention's products straight on the qkv projection's output `[B·T, 3D]` (columns [q | k | v], heads of
 * `hd` side by side): head h of sample b is the `T×hd` block at row b·T, column h·hd (+D for k, +2D for v),
 * a matrix with leading dimension 3D that `cblas_sgemm` reads where it lies. So no transpose to a heads-first
 * layout and back (the batched path's four `Transpose`s a block: ~12% of a `deit_mini_patch4_28` step), and
 * the scale 1/√hd rides on sgemm's alpha. One sgemm per (sample, head) and product, as the batched kernel.
 *
 * `DeitAttnScores` qkv → S `[B·H, T, T]` = scale·q·kᵀ; `DeitAttnContext` (P, qkv) → O `[B·T, D]` = P·v;
 * `DeitAttnGrad` (dO, qkv, P) → dqkv `[B·T, 3D]`: dv = Pᵀ·dO, dS = P ⊙ (dP − rowsum(dP ⊙ P)) with
 * dP = dO·vᵀ, dq = scale·dS·k, dk = scale·dSᵀ·q — each written into its own columns of dqkv.
 */
function attnDims(args: KernelArgs) {
  const { batch: B, tokens: T, heads: H, headDim: hd } = args.attrs as unknown as AttentionShape;
  const D = H * hd;
  return { B, T, H, hd, D, scale: 1 / Math.sqrt(hd) };
}

function checkQkv(qkv: tf.TensorInfo, B: number, T: number, D: number, kernel: string) {
  if (qkv.dtype !== "float32" || qkv.shape.length !== 2 || qkv.shape[0] !== B * T || qkv.shape[1] !== 3 * D) {
    throw new Error(`${kernel}: qkv must be float32 [${B * T}, ${3 * D}], got ${qkv.dtype} [${qkv.shape}]`);
  }
}

/** The `rows × cols` matrix at `off` of `x` with leading dimension `ld`, as the view sgemm is given. */
const block = (x: Float32Array, off: number, rows: number, cols: number, ld: number) =>
  x.subarray(off, off + (rows - 1) * ld + cols);

function makeAttnScores(gemm: Gemm) {
  return (args: KernelArgs) => {
    const { B, T, H, hd, D, scale } = attnDims(args);
    const qkv = args.inputs.qkv as tf.TensorInfo;
    checkQkv(qkv, B, T, D, "DeitAttnScores");
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([B * H, T, T], "float32");
    const X = floats(backend, qkv), S = floats(backend, out);
    const ld = 3 * D;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const q = block(X, b * T * ld + h * hd, T, hd, ld), k = block(X, b * T * ld + D + h * hd, T, hd, ld);
        gemm(NO_TRANS, TRANS, T, T, hd, scale, q, ld, k, ld, block(S, (b * H + h) * T * T, T, T, T), T);
      }
    }
    return out;
  };
}

function makeAttnContext(gemm: Gemm) {
  return (args: KernelArgs) => {
    const { B, T, H, hd, D } = attnDims(args);
    const { p, qkv } = args.inputs as { p: tf.TensorInfo; qkv: tf.TensorInfo };
    checkQkv(qkv, B, T, D, "DeitAttnContext");
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([B * T, D], "float32");
    const X = floats(backend, qkv), P = floats(backend, p);
    const O = floats(backend, out);
    const ld = 3 * D;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const pbh = block(P, (b * H + h) * T * T, T, T, T),
          v = block(X, b * T * ld + 2 * D + h * hd, T, hd, ld);
        gemm(NO_TRANS, NO_TRANS, T, hd, T, 1, pbh, T, v, ld, block(O, b * T * D + h * hd, T, hd, D), D);
      }
    }
    return out;
  };
}

function makeAttnGrad(gemm: Gemm) {
  return (args: KernelArgs) => {
    const { B, T, H, hd, D, scale } = attnDims(args);
    const { dy, qkv, p } = args.inputs as { dy: tf.TensorInfo; qkv: tf.TensorInfo; p: tf.TensorInfo };
    checkQkv(qkv, B, T, D, "DeitAttnGrad");
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([B * T, 3 * D], "float32");
    const X = floats(backend, qkv), P = floats(backend, p);
    const G = floats(backend, dy), DX = floats(backend, out);
    const ld = 3 * D;
    const dS = new Float32Array(T * T); // dP, then dS in place
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const q = b * T * ld + h * hd, k = q + D, v = q + 2 * D;
        const pbh = block(P, (b * H + h) * T * T, T, T, T), dO = block(G, b * T * D + h * hd, T, hd, D);
        gemm(TRANS, NO_TRANS, T, hd, T, 1, pbh, T, dO, D, block(DX, v, T, hd, ld), ld); // dv = Pᵀ·dO
        gemm(NO_TRANS, TRANS, T, T, hd, 1, dO, D, block(X, v, T, hd, ld), ld, dS, T); // dP = dO·vᵀ
        for (let r = 0; r < T * T; r += T) { // dS = P ⊙ (dP − rowsum(dP ⊙ P))
          let dot = 0;
          for (let c = r; c < r + T; c++) dot += dS[c] * pbh[c];
          for (let c = r; c < r + T; c++) dS[c] = pbh[c] * (dS[c] - dot);
        }
        const xq = block(X, q, T, hd, ld), xk = block(X, k, T, hd, ld);
        gemm(NO_TRANS, NO_TRANS, T, hd, T, scale, dS, T, xk, ld, block(DX, q, T, hd, ld), ld); // dq = s·dS·k
        gemm(TRANS, NO_TRANS, T, hd, T, scale, dS, T, xq, ld, block(DX, k, T, hd, ld), ld); // dk = s·dSᵀ·q
      }
    }
    return out;
  };
}

let stock: tf.KernelConfig | undefined;
let active = false;
let attentionRegistered = false;

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
  if (want && !attentionRegistered) {
    attentionRegistered = true;
    for (
      const [kernelName, make] of [
        ["DeitAttnScores", makeAttnScores],
        ["DeitAttnContext", makeAttnContext],
        ["DeitAttnGrad", makeAttnGrad],
      ] as const
    ) {
      tf.registerKernel({
        kernelName,
        backendName: "wasm",
        kernelFunc: make(gemmOf(lib!.cblas_sgemm)) as tf.KernelFunc,
      });
    }
  }
  tf.unregisterKernel("BatchMatMul", "wasm");
  if (want) {
    tf.registerKernel({
      kernelName: "BatchMatMul",
      backendName: "wasm",
      kernelFunc: makeBatchMatMul(gemmOf(lib!.cblas_sgemm), stock.kernelFunc) as tf.KernelFunc,
    });
  } else tf.registerKernel(stock);
  active = want;
  return want;
}
