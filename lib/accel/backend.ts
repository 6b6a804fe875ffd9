/**
 * Choosing and initialising the TensorFlow.js backend — the one place that does it.
 *
 * Order for `auto` (best first): `tensorflow` (tfjs-node-gpu when it loads and sees a GPU, else tfjs-node) →
 * `webgpu` on a real (non-fallback) adapter → `wasm` → `cpu`. Every backend that is not taken gets a reason,
 * which `deno task doctor` prints.
 *
 * tfjs-node cannot be installed on machines without Google storage access (its install script downloads
 * libtensorflow), so it is loaded only when asked for or when its package is present in node_modules; its
 * absence never breaks the other backends.
 */
import * as tf from "@tensorflow/tfjs";
import { createRequire } from "node:module";
import "@tensorflow/tfjs-backend-wasm";
import { blasMatMulActive, blasStatus, setBlasThreads, useBlasMatMul } from "./blas.ts";
import { envVar } from "../base/machine.ts";
import { visibleGpus } from "./gpu_select.ts";
import { fusedKernelsDetail, registerWasmKernelFixes } from "./wasm_kernels.ts";

export const BACKENDS = ["auto", "tensorflow", "webgpu", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
/** A backend that can actually run (`auto` resolved). */
export type ConcreteBackend = Exclude<BackendName, "auto">;

export interface BackendProbe {
  name: ConcreteBackend;
  available: boolean;
  /** Why not available, or what exactly is used (e.g. "tfjs-node-gpu, 2 GPUs"). */
  detail: string;
}

export interface BackendChoice {
  /** The backend now active in tf. */
  name: ConcreteBackend;
  detail: string;
  /** Backends tried before it (for `auto`) and why each was not taken. */
  skipped: BackendProbe[];
}

const TFJS_NODE_VERSION = "4.22.0";
const INSTALL_HINT = "install it as the README's multi-GPU section says " +
  "(npm package @tensorflow/tfjs-node-gpu@4.22.0 in its own prefix, CUDA 11.x user-space libraries and cuDNN 8)";

export function isBackendName(s: string): s is BackendName {
  return (BACKENDS as readonly string[]).includes(s);
}

/** Is an npm package present in the project's node_modules (without importing it)? */
function packagePresent(pkg: string): boolean {
  const root = new URL("../../node_modules/", import.meta.url);
  try {
    return Deno.statSync(new URL(`${pkg}/package.json`, root)).isFile;
  } catch {
    return false;
  }
}

/**
 * Load tfjs-node(-gpu). It registers the `tensorflow` backend on tfjs's engine, which every copy of tfjs-core
 * 4.22.0 in a process shares (it lives on the global object), so a copy installed elsewhere works too:
 * - `DEIT_TFJS_NODE=DIR`: the package installed with npm into its own prefix DIR (`npm install --prefix DIR
 *   @tensorflow/tfjs-node-gpu@4.22.0`; its install script fetches libtensorflow and the binding), so that
 *   neither deno.json nor deno.lock changes;
 * - else a copy in this project's node_modules.
 * The specifier is built at run time so that `deno check`/`deno install` never resolve it here.
 */
async function loadTfjsNode(): Promise<BackendProbe> {
  const candidates = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"];
  const reasons: string[] = [];
  const gpus = (await visibleGpus()).length;
  const prefix = envVar("DEIT_TFJS_NODE");
  for (const pkg of candidates) {
    if (pkg.endsWith("-gpu") && gpus === 0) {
      reasons.push(
        `${pkg}: no NVIDIA GPU visible (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES hides them)`,
      );
      continue;
    }
    let spec: string;
    if (prefix) {
      const dir = `${prefix.replace(/\/+$/, "")}/node_modules/${pkg}`;
      // node-pre-gyp takes the highest N-API version the package lists (3–8) that the runtime has (Deno: 10).
      const binding = `${dir}/lib/napi-v8/tfjs_binding.node`;
      if (!existsSync(`${dir}/package.json`)) {
        reasons.push(`${pkg}: not in DEIT_TFJS_NODE=${prefix}`);
        continue;
      }
      if (!existsSync(binding)) {
        reasons.push(`${pkg}: ${binding} is missing (its install script did not finish)`);
        continue;
      }
      spec = dir;
    } else if (packagePresent(pkg)) {
      spec = ["npm:", pkg, "@", TFJS_NODE_VERSION].join("");
    } else {
      // Never fetched on the fly: a bare download has no native addon (its install script is what fetches
      // libtensorflow), so only a package the user installed as the README says is tried.
      reasons.push(`${pkg}: not installed`);
      continue;
    }
    try {
      // A package outside Deno's node_modules is CommonJS that Deno does not know as such: `require` it (its
      // own tfjs-core copy shares the engine with ours — checked with tfjs-core 4.22.0 from an npm prefix).
      if (prefix) createRequire(import.meta.url)(spec);
      else await import(spec);
      if (
        tf.findBackend("tensorflow") === undefined && tf.engine().registryFactory["tensorflow"] === undefined
      ) {
        reasons.push(`${pkg}: loaded but registered no 'tensorflow' backend (another tfjs-core version?)`);
        continue;
      }
      return {
        name: "tensorflow",
        available: true,
        detail: pkg + (prefix ? ` from ${prefix}` : "") +
          (pkg.endsWith("-gpu") ? `, ${gpus} GPU(s) visible` : ""),
      };
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0];
      reasons.push(`${pkg}: failed to load (${msg.slice(0, 160)})`);
    }
  }
  return { name: "tensorflow", available: false, detail: `${reasons.join("; ")} — ${INSTALL_HINT}` };
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Keeps Vulkan start-up quiet on a machine without a desktop session. Deno's WebGPU (wgpu) creates a Vulkan
 * instance on the first adapter request; the Vulkan loader then loads Mesa's implicit device-selection layer
 * (VK_LAYER_MESA_device_select), which, unless told which GPU to take, asks the Wayland compositor for the
 * default one through libwayland-client's `wl_display_connect` — and that prints `error: XDG_RUNTIME_DIR is
 * invalid or not set in the environment.` to stderr, once per device enumeration (twice per adapter request),
 * when XDG_RUNTIME_DIR is not an absolute path.
 *
 * The layer is what `sweep --devices` steers GPUs with (`DRI_PRIME`, lib/accel/gpu_select.ts), so it stays on;
 * instead the process gets a private runtime folder, as the XDG spec describes one: `$TMPDIR/deit-runtime-<uid>`
 * (or /tmp/…), created 0700 and used only when it is a real folder of this user with mode 0700. The compositor
 * lookup then finds no socket there and fails quietly, exactly as it failed before (there is no compositor
 * without XDG_RUNTIME_DIR), so the GPU chosen is the same. Nothing is written into the folder; child processes
 * inherit it. A set XDG_RUNTIME_DIR (or a WAYLAND_DISPLAY socket path) is left alone. Call it before anything
 * touches `navigator.gpu`.
 */
export function quietVulkanStartup(): void {
  try {
    const runtimeDir = Deno.env.get("XDG_RUNTIME_DIR") ?? "";
    const display = Deno.env.get("WAYLAND_DISPLAY") ?? "";
    if (runtimeDir.startsWith("/") || display.startsWith("/")) return;
    const uid = Deno.uid();
    if (uid === null) return; // not a Unix
    const tmp = (Deno.env.get("TMPDIR") || "/tmp").replace(/\/+$/, "") || "/tmp";
    const dir = `${tmp}/deit-runtime-${uid}`;
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
      Deno.chmodSync(dir, 0o700); // whatever the umask
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) return;
    }
    const info = Deno.lstatSync(dir); // a symlink planted there is not a folder of ours
    if (!info.isDirectory || info.uid !== uid || ((info.mode ?? 0) & 0o777) !== 0o700) return;
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // No permission to read or set the environment: the message may appear, nothing else changes.
  }
}

async function probeWebgpu(): Promise<BackendProbe> {
  quietVulkanStartup();
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { name: "webgpu", available: false, detail: "this runtime has no navigator.gpu" };
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { name: "webgpu", available: false, detail: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return { name: "webgpu", available: false, detail: "no WebGPU adapter (install a Vulkan driver)" };
  }
  const info = adapter.info;
  const desc = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(" ");
  // deno-lint-ignore no-explicit-any
  const fallback = (info as any).isFallbackAdapter ?? (adapter as any).isFallbackAdapter ?? false;
  if (fallback) {
    return {
      name: "webgpu",
      available: false,
      detail: `only a fallback (software) adapter: ${desc || "unknown"}; slower than wasm here ` +
        "(choose it explicitly with --backend webgpu)",
    };
  }
  return { name: "webgpu", available: true, detail: desc || "WebGPU adapter" };
}

async function probe(name: ConcreteBackend, explicit: boolean): Promise<BackendProbe> {
  switch (name) {
    case "tensorflow":
      return await loadTfjsNode();
    case "webgpu": {
      const p = await probeWebgpu();
      // Asked for by name, a fallback adapter is still usable (e.g. Mesa lavapipe for numerical checks).
      if (explicit && !p.available && p.detail.startsWith("only a fallback")) {
        return { ...p, available: true };
      }
      return p;
    }
    case "wasm": {
      const b = blasStatus();
      const mm = b.loaded
        ? `matmuls through BLAS (${b.detail})`
        : `matmuls through XNNPACK (no BLAS: ${b.detail})`;
      const detail = `tfjs-backend-wasm, SIMD, single-threaded under Deno; ${mm}; ${fusedKernelsDetail()}`;
      return { name, available: true, detail };
    }
    case "cpu":
      return { name, available: true, detail: "pure JavaScript (reference speed)" };
  }
}

export interface InitOptions {
  /** Keep tfjs-backend-wasm's stock Slice and BatchMatMul kernels (for before/after benchmarks only). */
  stockKernels?: boolean;
  /**
   * wasm only: matrix products through the machine's BLAS when one loads (`blas`, the default) or through
   * the stock XNNPACK kernel (`xnnpack`). `DEIT_MATMUL=xnnpack` in the environment does the same.
   */
  matmul?: MatMulChoice;
  /** Threads BLAS may use per product (default: every core; data-parallel workers split the cores). */
  blasThreads?: number;
}

export type MatMulChoice = "blas" | "xnnpack";

/** `value` as a matmul choice, or null when it is not one (each caller says where it came from). */
export function parseMatMul(value: string): MatMulChoice | null {
  return value === "blas" || value === "xnnpack" ? value : null;
}

function envMatMul(): MatMulChoice | undefined {
  const v = envVar("DEIT_MATMUL");
  if (v === undefined) return undefined;
  const choice = parseMatMul(v);
  if (!choice) throw new Error(`DEIT_MATMUL must be blas or xnnpack, got '${v}'`);
  return choice;
}

/**
 * Cores this process's BLAS may use: `DEIT_BLAS_THREADS` (a sweep running several runs side by side sets it
 * to each run's share), else every core.
 */
export function blasThreadBudget(): number {
  const n = Number(envVar("DEIT_BLAS_THREADS"));
  return Number.isInteger(n) && n > 0 ? n : navigator.hardwareConcurrency;
}

/** What runs a backend's matrix products, as a record's field: `{ matmul }` where there is a choice (wasm: BLAS
 * or XNNPACK), `{}` elsewhere. */
export function matmulKernel(backend: string): { matmul?: string } {
  return backend === "wasm" ? { matmul: wasmMatMul() } : {};
}

/** Which matmul the wasm backend uses now: "blas (libopenblas.so.0: …)" or "xnnpack (why)". */
export function wasmMatMul(): string {
  const s = blasStatus();
  if (blasMatMulActive()) return `blas (${s.detail})`;
  return s.loaded ? "xnnpack (chosen)" : `xnnpack (no BLAS: ${s.detail})`;
}

async function activate(name: ConcreteBackend, opts: InitOptions = {}): Promise<void> {
  if (name === "webgpu") {
    quietVulkanStartup();
    await import("@tensorflow/tfjs-backend-webgpu");
  }
  if (name === "wasm") {
    if (!opts.stockKernels) registerWasmKernelFixes();
    const choice = opts.stockKernels ? "xnnpack" : opts.matmul ?? envMatMul() ?? "blas";
    if (useBlasMatMul(choice === "blas")) setBlasThreads(opts.blasThreads ?? blasThreadBudget());
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend '${name}' failed to initialise`);
  await tf.ready();
}

/**
 * A tiny training step on the active backend — a matrix product, its gradient through `variableGrads`, an
 * optimiser-style update and an asynchronous read of the results — that throws when the backend cannot train
 * (e.g. a read-back that fails, as tfjs-backend-webgpu's synchronous one does under Deno).
 */
export async function trainingSelfTest(): Promise<void> {
  const init = tf.tensor2d([[1, 2], [3, 4]]);
  const w = tf.variable(init, true);
  init.dispose();
  try {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.matMul(w, w)) as tf.Scalar, [w]);
    tf.tidy(() => w.assign(tf.sub(w, tf.mul(grads[w.name], 0.5))));
    const [loss, after] = [(await value.data())[0], Array.from(await w.data())];
    tf.dispose([value, ...Object.values(grads)]);
    // d/dW sum(W·W) = 1·Wᵀ + Wᵀ·1 → [[7, 11], [9, 13]] for W = [[1, 2], [3, 4]]; sum(W·W) = 54.
    const want = [1 - 3.5, 2 - 5.5, 3 - 4.5, 4 - 6.5];
    if (loss !== 54 || after.some((v, i) => Math.abs(v - want[i]) > 1e-5)) {
      throw new Error(`a training step computed wrong values (loss ${loss}, weights ${after})`);
    }
  } finally {
    w.dispose();
  }
}

/**
 * Whether TensorFlow (tfjs-node-gpu) placed work on a GPU: after a small op on the `tensorflow` backend, the
 * binding's `isUsingGpuDevice` (true when TensorFlow registered a GPU device at start-up; it silently runs on the
 * CPU when libcudart/libcudnn fail to load). Null when the active backend is not `tensorflow`.
 */
export async function tensorflowUsesGpu(): Promise<boolean | null> {
  if (tf.getBackend() !== "tensorflow") return null;
  const t = tf.tidy(() => tf.matMul(tf.ones([8, 8]), tf.ones([8, 8])));
  await t.data();
  t.dispose();
  return Boolean((tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice);
}

/** Probe every concrete backend (for `deno task doctor`); does not change the active backend. */
export async function probeAll(): Promise<BackendProbe[]> {
  const out: BackendProbe[] = [];
  for (const name of BACKENDS) if (name !== "auto") out.push(await probe(name, false));
  return out;
}

/**
 * Make `requested` the active tf backend. `auto` takes the first available in the documented order.
 * An explicit backend that is not available is an error that says why.
 */
export async function initBackend(
  requested: BackendName | string = "auto",
  opts: InitOptions = {},
): Promise<BackendChoice> {
  if (!isBackendName(requested)) {
    throw new Error(`unknown backend '${requested}' (choose one of ${BACKENDS.join(", ")})`);
  }
  if (requested !== "auto") {
    const p = await probe(requested, true);
    if (!p.available) throw new Error(`backend '${requested}' is not available: ${p.detail}`);
    await activate(requested, opts);
    return { name: requested, detail: p.detail, skipped: [] };
  }
  const skipped: BackendProbe[] = [];
  for (const name of ["tensorflow", "webgpu", "wasm", "cpu"] as const) {
    const p = await probe(name, false);
    if (p.available) {
      try {
        await activate(name, opts);
        // `auto` takes only a backend that can train: a gradient step whose values come back.
        if (name !== "cpu") await trainingSelfTest();
        return { name, detail: p.detail, skipped };
      } catch (e) {
        const why = (e as Error).message.split("\n")[0].slice(0, 200);
        skipped.push({ ...p, available: false, detail: `${p.detail}; cannot train here: ${why}` });
        continue;
      }
    }
    skipped.push(p);
  }
  throw new Error("no TensorFlow.js backend could be initialised");
}
