/**
 * Our own wasm-SIMD kernels (lib/accel/simd/kernels.wat), run on tfjs-backend-wasm's heap: the module imports the
 * backend instance's `WebAssembly.Memory`, so a kernel reads its inputs and writes its outputs where tf keeps
 * them, four floats an instruction. Why not JavaScript: even a trivial loop over a Float32Array costs ~2.5 ns an
 * element here and V8's `Math.exp` ~15 ns, against well under 1 ns for these (bench/NOTES.md § Lever 5).
 *
 * - `gelu_fwd`: y = x·Φ(x) and Φ(x) (kept for the backward pass), Φ from erf by Abramowitz & Stegun 7.1.28.
 * - `gelu_bwd`: dx = dy·(Φ(x) + x·φ(x)), with e^(−x²/2) by range reduction and a degree-6 polynomial.
 * Both in float32; the last `n mod 4` elements are done here in JavaScript with the same formulas.
 * - `layernorm_fwd` / `layernorm_bwd`: LayerNorm over rows whose length is a multiple of 4 (the caller keeps
 *   other widths), returning x̂ and 1/σ for the backward pass, which also sums the weight and bias gradients.
 */
import { KERNELS_WASM_BASE64 } from "./kernels_wasm.ts";
import type { WasmBackendLike } from "../kernel.ts";

interface Exports {
  gelu_fwd(x: number, y: number, cdf: number, n: number): void;
  gelu_bwd(x: number, cdf: number, dy: number, dx: number, n: number): void;
  layernorm_fwd(
    x: number,
    w: number,
    b: number,
    y: number,
    xhat: number,
    rstd: number,
    rows: number,
    d: number,
    eps: number,
  ): void;
  layernorm_bwd(
    dy: number,
    xhat: number,
    rstd: number,
    w: number,
    dx: number,
    dw: number,
    db: number,
    rows: number,
    d: number,
  ): void;
}

let bytes: Uint8Array<ArrayBuffer> | null = null;
let module: WebAssembly.Module | null = null;
const instances = new WeakMap<WebAssembly.Memory, Exports>();

function wasmBytes(): Uint8Array<ArrayBuffer> {
  bytes ??= Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
  return bytes;
}

/** Whether this runtime runs the module (wasm SIMD). */
export function simdSupported(): boolean {
  try {
    return WebAssembly.validate(wasmBytes());
  } catch {
    return false;
  }
}

/**
 * Whether these kernels can run on this backend's heap: a plain (not shared) `WebAssembly.Memory` reachable at
 * `backend.wasm.asm.memory` (tfjs-backend-wasm 4.x, single-threaded as under Deno).
 */
export function heapUsable(backend: unknown): boolean {
  const memory = (backend as Partial<WasmBackendLike> | null)?.wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory && !(memory.buffer instanceof SharedArrayBuffer);
}

function kernelsFor(backend: WasmBackendLike): Exports {
  const memory = backend.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error("lib/accel/simd: the wasm backend's memory is not reachable (backend.wasm.asm.memory)");
  }
  let k = instances.get(memory);
  if (!k) {
    module ??= new WebAssembly.Module(wasmBytes());
    k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports;
    instances.set(memory, k);
  }
  return k;
}

/** Byte offset of a tensor's data in the heap. */
function offset(backend: WasmBackendLike, dataId: unknown): number {
  const d = backend.dataIdMap.get(dataId);
  if (!d) throw new Error("lib/accel/simd: tensor data is not on the wasm backend");
  return d.memoryOffset;
}

const A1 = 0.0705230784, A2 = 0.0422820123, A3 = 0.0092705272, A4 = 0.0001520143, A5 = 0.0002765672;
const A6 = 0.0000430638;

/** Φ(v) as the wasm kernel computes it (for the last few elements). */
function cdf(v: number): number {
  const a = Math.abs(v) * Math.SQRT1_2;
  let p = 1 + a * (A1 + a * (A2 + a * (A3 + a * (A4 + a * (A5 + a * A6)))));
  p *= p;
  p *= p;
  p *= p;
  const halfTail = 0.5 / (p * p);
  return v < 0 ? halfTail : 1 - halfTail;
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

type Ref = { dataId: unknown };

/** y = x·Φ(x), cdf = Φ(x) for `n` floats; `view(t)` gives a tensor's heap view (for the tail). */
export function geluForward(
  backend: WasmBackendLike,
  n: number,
  x: Ref,
  y: Ref,
  cdfOut: Ref,
  view: (t: Ref) => Float32Array,
): void {
  const n4 = n - (n % 4);
  if (n4 > 0) {
    const o = (t: Ref) => offset(backend, t.dataId);
    kernelsFor(backend).gelu_fwd(o(x), o(y), o(cdfOut), n4);
  }
  if (n4 === n) return;
  const xs = view(x), ys = view(y), cs = view(cdfOut);
  for (let i = n4; i < n; i++) {
    cs[i] = cdf(xs[i]);
    ys[i] = xs[i] * cs[i];
  }
}

/** dx = dy·(Φ(x) + x·φ(x)) for `n` floats. */
export function geluBackward(
  backend: WasmBackendLike,
  n: number,
  x: Ref,
  cdfIn: Ref,
  dy: Ref,
  dx: Ref,
  view: (t: Ref) => Float32Array,
): void {
  const n4 = n - (n % 4);
  if (n4 > 0) {
    const o = (t: Ref) => offset(backend, t.dataId);
    kernelsFor(backend).gelu_bwd(o(x), o(cdfIn), o(dy), o(dx), n4);
  }
  if (n4 === n) return;
  const xs = view(x), cs = view(cdfIn), g = view(dy), out = view(dx);
  for (let i = n4; i < n; i++) {
    const v = xs[i];
    out[i] = g[i] * (cs[i] + v * Math.exp(-0.5 * v * v) * INV_SQRT_2PI);
  }
}

/** LayerNorm forward over `rows` rows of `d` floats (d % 4 === 0): y, x̂ and 1/σ. */
export function layerNormForward(
  backend: WasmBackendLike,
  rows: number,
  d: number,
  eps: number,
  t: { x: Ref; weight: Ref; bias: Ref; y: Ref; xhat: Ref; rstd: Ref },
): void {
  if (d % 4 !== 0) throw new Error(`lib/accel/simd layerNormForward: row length ${d} is not a multiple of 4`);
  if (rows === 0) return;
  const o = (r: Ref) => offset(backend, r.dataId);
  kernelsFor(backend).layernorm_fwd(
    o(t.x),
    o(t.weight),
    o(t.bias),
    o(t.y),
    o(t.xhat),
    o(t.rstd),
    rows,
    d,
    eps,
  );
}

/** LayerNorm backward over `rows` rows of `d` floats (d % 4 === 0): dx, dweight, dbias. */
export function layerNormBackward(
  backend: WasmBackendLike,
  rows: number,
  d: number,
  t: { dy: Ref; xhat: Ref; rstd: Ref; weight: Ref; dx: Ref; dweight: Ref; dbias: Ref },
): void {
  if (d % 4 !== 0) {
    throw new Error(`lib/accel/simd layerNormBackward: row length ${d} is not a multiple of 4`);
  }
  const o = (r: Ref) => offset(backend, r.dataId);
  kernelsFor(backend).layernorm_bwd(
    o(t.dy),
    o(t.xhat),
    o(t.rstd),
    o(t.weight),
    o(t.dx),
    o(t.dweight),
    o(t.dbias),
    rows,
    d,
  );
}
