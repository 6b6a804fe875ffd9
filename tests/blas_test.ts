/**
 * The BLAS matmul kernel (lib/accel/blas.ts) computes what the stock wasm kernel does: every shape tf sends to
 * `BatchMatMul` (2-D, transposes, batches, broadcast batches, empty and K = 0), its gradients, and a training
 * run's losses. Skipped with the reason where no BLAS library loads.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertThrows } from "@std/assert";
import { initBackend, wasmMatMul } from "../lib/accel/backend.ts";
import { blasStatus, openblasCoreFromFlags } from "../lib/accel/blas.ts";
import { relErr, trainTiny } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

const blas = blasStatus();
if (!blas.loaded) console.log(`blas_test: skipped, no BLAS (${blas.detail})`);

/** Run `f` with the wasm backend's matmul set to `matmul`; return its output's values. */
async function withMatMul(matmul: "blas" | "xnnpack", f: () => tf.Tensor): Promise<Float32Array> {
  await initBackend("wasm", { matmul });
  assert(wasmMatMul().startsWith(matmul), wasmMatMul());
  const y = f();
  const v = (await y.data()) as Float32Array;
  y.dispose();
  return v;
}

// [a shape, b shape, transposeA, transposeB]
const CASES: [number[], number[], boolean, boolean][] = [
  [[7, 5], [5, 3], false, false],
  [[5, 7], [5, 3], true, false],
  [[7, 5], [3, 5], false, true],
  [[5, 7], [3, 5], true, true],
  [[4, 7, 5], [4, 5, 3], false, false],
  [[4, 5, 7], [4, 3, 5], true, true],
  [[1, 7, 5], [4, 5, 3], false, false], // broadcast a
  [[4, 7, 5], [5, 3], false, false], // broadcast b, lower rank
  [[2, 3, 7, 5], [2, 3, 5, 3], false, false], // rank 4
  [[2, 1, 7, 5], [1, 3, 5, 3], false, false], // broadcast on both sides: stock kernel
  [[0, 7, 5], [0, 5, 3], false, false], // empty batch
  [[7, 0], [0, 3], false, false], // K = 0
  [[64, 197, 64], [64, 64, 197], false, false], // attention-sized
];

Deno.test({
  name: "BLAS BatchMatMul equals the stock kernel on every shape tf sends it",
  ignore: !blas.loaded,
  fn: async () => {
    for (const [sa, sb, ta, tb] of CASES) {
      const make = () => [tf.randomNormal(sa, 0, 1, "float32", 1), tf.randomNormal(sb, 0, 1, "float32", 2)];
      const mm = () => {
        const [a, b] = make();
        const y = tf.matMul(a, b, ta, tb);
        tf.dispose([a, b]);
        return y;
      };
      const got = await withMatMul("blas", mm), want = await withMatMul("xnnpack", mm);
      const what = `${JSON.stringify(sa)}·${JSON.stringify(sb)} tA=${ta} tB=${tb}`;
      assertEquals(got.length, want.length, what);
      // K = 0: an empty sum is 0 (the stock kernel leaves the output's memory as it found it).
      if (sa.length === 2 && sa[1] === 0) assert(got.every((v) => v === 0), `${what}: K = 0 gives zeros`);
      else if (want.length > 0) assert(relErr(got, want) < 1e-6, `${what}: rel. error ${relErr(got, want)}`);
    }
  },
});

Deno.test({
  name: "BLAS BatchMatMul: gradients equal the stock kernel's; mismatched inner sizes are tf's error",
  ignore: !blas.loaded,
  fn: async () => {
    const grads = () => {
      const a = tf.randomNormal([3, 6, 4], 0, 1, "float32", 3),
        b = tf.randomNormal([3, 5, 4], 0, 1, "float32", 4);
      const [ga, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.matMul(a, b, false, true)))
      )([
        a,
        b,
      ]);
      const out = tf.concat([ga.flatten(), gb.flatten()]);
      tf.dispose([a, b, ga, gb]);
      return out;
    };
    const got = await withMatMul("blas", grads), want = await withMatMul("xnnpack", grads);
    assert(relErr(got, want) < 1e-6, `rel. error ${relErr(got, want)}`);
    await initBackend("wasm", { matmul: "blas" });
    assertThrows(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 2])), Error, "inner shapes");
  },
});

Deno.test({
  name: "a training run's losses with BLAS and with the stock kernel agree over 5 AdamW steps",
  ignore: !blas.loaded,
  fn: async () => {
    await initBackend("wasm", { matmul: "blas" });
    const withBlas = (await trainTiny(5)).losses;
    await initBackend("wasm", { matmul: "xnnpack" });
    const stock = (await trainTiny(5)).losses;
    withBlas.forEach((l, i) => {
      const e = Math.abs(l - stock[i]) / Math.abs(stock[i]);
      assert(e < 1e-5, `step ${i}: BLAS ${l} vs stock ${stock[i]} (${e})`);
    });
    assert(stock[4] < stock[0], "the loss should fall on a repeated tiny problem");
  },
});

Deno.test("DEIT_BLAS=off and DEIT_MATMUL=xnnpack keep the stock kernel (a fresh process)", async () => {
  const code = `import { initBackend, wasmMatMul } from "./lib/accel/backend.ts";
await initBackend("wasm"); console.log(wasmMatMul());`;
  const root = fromFileUrl(new URL("../", import.meta.url));
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], cwd: root, env }).output();
    return new TextDecoder().decode(out.stdout).trim() + new TextDecoder().decode(out.stderr).trim();
  };
  assert((await run({ DEIT_BLAS: "off" })).includes("xnnpack (no BLAS: turned off"), "DEIT_BLAS=off");
  const named = await run({ DEIT_BLAS: "libno-such-blas.so" });
  assert(named.includes("xnnpack (no BLAS: libno-such-blas.so"), named);
  if (blas.loaded) assert((await run({ DEIT_MATMUL: "xnnpack" })).startsWith("xnnpack (chosen)"));
  assert((await run({ DEIT_MATMUL: "mkl" })).includes("DEIT_MATMUL must be blas or xnnpack"));
  if (blas.loaded && blas.detail.includes("OpenBLAS") && Deno.build.arch === "x86_64") {
    // A core the user names is kept (and said without "from the CPU's flags").
    const named = await run({ OPENBLAS_CORETYPE: "Haswell" });
    assert(named.includes(" Haswell ") && !named.includes("from the CPU's flags"), named);
  }
});

Deno.test("the OpenBLAS kernel family is read off the CPU's flags", () => {
  const avx512 = "fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl";
  assertEquals(openblasCoreFromFlags(avx512), "SkylakeX");
  assertEquals(openblasCoreFromFlags("fpu sse2 avx avx2 fma avx512f"), "Haswell"); // AVX-512 F alone: not enough
  assertEquals(openblasCoreFromFlags(" fpu sse2 avx avx2 fma "), "Haswell");
  assertEquals(openblasCoreFromFlags("fpu sse2 avx"), undefined);
  assertEquals(openblasCoreFromFlags(""), undefined);
});
