/**
 * The wasm kernels replaced in lib/accel/wasm_kernels.ts (Slice, Transpose) give exactly what the cpu backend gives,
 * for every permutation of ranks 1–5, with size-1 axes, empty tensors and int32 data; the fused LayerNorm and
 * GELU give what the composed ones give on the cpu backend (values and gradients).
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { initBackend } from "../lib/accel/backend.ts";
import { gelu, layerNorm } from "../lib/accel/ops.ts";
import { fusedKernelsActive } from "../lib/accel/wasm_kernels.ts";
import { relErr } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])
  );
}

async function on(backend: string, f: () => tf.Tensor): Promise<number[]> {
  await initBackend(backend);
  const y = f();
  const v = Array.from(await y.data() as Float32Array);
  y.dispose();
  return v;
}

Deno.test("Transpose on wasm equals the cpu backend for every permutation (ranks 1–5)", async () => {
  const shapes = [[5], [3, 18], [18, 3], [2, 3, 4], [1, 17, 1, 20], [2, 3, 1, 4, 5], [3, 0, 2], [
    4,
    17,
    3,
    2,
    32,
  ]];
  for (const shape of shapes) {
    for (const perm of permutations(shape.length)) {
      for (const dtype of ["float32", "int32"] as const) {
        const f = () =>
          tf.tidy(() =>
            tf.transpose(tf.cast(tf.mul(tf.randomUniform(shape, 0, 1, "float32", 7), 100), dtype), perm)
          );
        assertEquals(await on("wasm", f), await on("cpu", f), `${dtype} ${shape} perm ${perm}`);
      }
    }
  }
});

Deno.test("Slice on wasm equals the cpu backend (contiguous and strided, ranks 1–4)", async () => {
  const cases: [number[], number[], number[]][] = [
    [[10], [2], [5]],
    [[6, 7], [1, 2], [3, 4]],
    [[6, 7], [2, 0], [3, 7]],
    [[4, 5, 6], [1, 0, 2], [2, 5, 3]],
    [[3, 4, 5, 6], [1, 1, 0, 2], [2, 2, 5, 3]],
    [[3, 4], [0, 0], [0, 4]],
  ];
  for (const [shape, begin, size] of cases) {
    const f = () => tf.tidy(() => tf.slice(tf.randomUniform(shape, 0, 1, "float32", 3), begin, size));
    assertEquals(await on("wasm", f), await on("cpu", f), `${shape} begin ${begin} size ${size}`);
  }
});

Deno.test("fused LayerNorm on wasm equals the composed one on cpu: output and gradients", async () => {
  for (const shape of [[3, 18, 48], [7, 5], [2, 1, 96], [0, 8]]) {
    const D = shape[shape.length - 1];
    const run = async (backend: string) => {
      await initBackend(backend);
      assertEquals(fusedKernelsActive(), backend === "wasm");
      const out = tf.tidy(() => {
        // Offsets and scales like a residual stream's, and a weight far from 1.
        const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, "float32", 11), 3), 0.5);
        const w = tf.randomNormal([D], 1, 0.5, "float32", 12) as tf.Tensor1D;
        const b = tf.randomNormal([D], 0, 0.5, "float32", 13) as tf.Tensor1D;
        const dy = tf.randomNormal(shape, 0, 1, "float32", 14);
        const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(layerNorm(x, w as tf.Tensor1D, b as tf.Tensor1D, 1e-6), dy));
        const { value, grads } = tf.valueAndGrads(f)([x, w, b]);
        return [layerNorm(x, w, b, 1e-6), value, ...grads];
      });
      const vals = await Promise.all(out.map(async (t) => Array.from(await t.data() as Float32Array)));
      out.forEach((t, i) => assertEquals(t.shape, [shape, [], shape, [D], [D]][i]));
      tf.dispose(out);
      return vals;
    };
    const got = await run("wasm"), want = await run("cpu");
    ["y", "loss", "dx", "dweight", "dbias"].forEach((what, i) => {
      if (want[i].length === 0) return assertEquals(got[i], [], what);
      const e = relErr(got[i], want[i]);
      assert(e < 1e-5, `${shape} ${what}: relative error ${e.toExponential(2)}`);
    });
  }
});

Deno.test("fused GELU on wasm equals the composed one on cpu: output and gradient", async () => {
  for (const shape of [[6, 50, 384], [5], [0, 3]]) {
    const run = async (backend: string) => {
      await initBackend(backend);
      assertEquals(fusedKernelsActive(), backend === "wasm");
      const out = tf.tidy(() => {
        const x = tf.mul(tf.randomNormal(shape, 0, 1, "float32", 21), 4); // both tails, and the middle
        const dy = tf.randomNormal(shape, 0, 1, "float32", 22);
        const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => tf.sum(tf.mul(gelu(x), dy)))([x]);
        return [gelu(x), value, grads[0]];
      });
      const vals = await Promise.all(out.map(async (t) => Array.from(await t.data() as Float32Array)));
      out.forEach((t, i) => assertEquals(t.shape, [shape, [], shape][i]));
      tf.dispose(out);
      return vals;
    };
    const got = await run("wasm"), want = await run("cpu");
    ["y", "loss", "dx"].forEach((what, i) => {
      if (want[i].length === 0) return assertEquals(got[i], [], what);
      const e = relErr(got[i], want[i]);
      assert(e < 1e-5, `${shape} ${what}: relative error ${e.toExponential(2)}`);
    });
  }
});

Deno.test("Identity on wasm shares the data: a clone outlives its source and frees nothing twice", async () => {
  await initBackend("wasm");
  const buffers = () => tf.engine().backend.numDataIds();
  const before = buffers();
  const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  const y = tf.clone(x);
  assertEquals(buffers(), before + 1, "one buffer for both");
  x.dispose();
  assertEquals(Array.from(await y.data()), [1, 2, 3, 4, 5, 6]);
  const z = tf.add(y, 1); // a kernel reading the shared buffer
  y.dispose();
  assertEquals(Array.from(await z.data()), [2, 3, 4, 5, 6, 7]);
  z.dispose();
  assertEquals(buffers(), before);
  const s = tf.clone(tf.tensor1d(["a", "b"], "string")); // strings: the stock kernel
  assertEquals(await s.data<"string">(), ["a", "b"]);
});

Deno.test("lib/accel/simd/kernels_wasm.ts is lib/accel/simd/kernels.wat assembled (scripts/build_wasm.sh)", async () => {
  const root = fromFileUrl(new URL("../", import.meta.url));
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("wat2wasm", {
      args: ["lib/accel/simd/kernels.wat", "--output=-"],
      cwd: root,
    })
      .output();
  } catch {
    console.log("skipped: no wat2wasm (Debian's wabt)");
    return;
  }
  assert(out.success, new TextDecoder().decode(out.stderr));
  const { KERNELS_WASM_BASE64 } = await import("../lib/accel/simd/kernels_wasm.ts");
  const committed = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
  assertEquals(committed, out.stdout, "run scripts/build_wasm.sh after changing kernels.wat");
});

Deno.test("DEIT_SIMD=off: LayerNorm's JavaScript loops and the composed GELU give the same (a fresh process)", async () => {
  const code = `import * as tf from "@tensorflow/tfjs";
import { initBackend } from "./lib/accel/backend.ts";
import { gelu, layerNorm } from "./lib/accel/ops.ts";
import { fusedGeluActive, fusedKernelsDetail } from "./lib/accel/wasm_kernels.ts";
await initBackend("wasm");
const x = tf.randomNormal([6, 48], 0, 2, "float32", 4);
const y = layerNorm(gelu(x), tf.randomNormal([48], 1, 0.5, "float32", 5), tf.zeros([48]), 1e-6);
console.log(JSON.stringify({ active: fusedGeluActive(), detail: fusedKernelsDetail(), y: Array.from(y.dataSync()) }));`;
  const root = fromFileUrl(new URL("../", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    cwd: root,
    env: { DEIT_SIMD: "off" },
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const got = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  assertEquals(got.active, false);
  assert(got.detail.includes("DEIT_SIMD=off"), got.detail);
  await initBackend("cpu");
  const want = tf.tidy(() => {
    const x = tf.randomNormal([6, 48], 0, 2, "float32", 4);
    return layerNorm(
      gelu(x),
      tf.randomNormal([48], 1, 0.5, "float32", 5) as tf.Tensor1D,
      tf.zeros([48]),
      1e-6,
    );
  });
  const e = relErr(got.y, await want.data() as Float32Array);
  want.dispose();
  assert(e < 1e-5, `relative error ${e}`);
});
