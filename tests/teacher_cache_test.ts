/**
 * The teacher-logit cache (lib/distill/teacher_cache.ts): a hit gives the teacher's very floats, a miss computes
 * and stores them, a damaged entry is recomputed, another teacher or engine gets another folder — and a
 * distillation run that reads every teacher logit from the cache trains exactly as one without it.
 */
import { assert, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import * as tf from "@tensorflow/tfjs";
import { teacherCacheDir, TeacherLogitCache } from "../lib/distill/teacher_cache.ts";
import type { Teacher } from "../lib/distill/losses.ts";
import { buildModel } from "../lib/models/registry.ts";
import { saveSafetensors } from "../lib/io/checkpoint.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { readRunLog, tinyRunConfig, trainProcess, useBackend } from "./helpers.ts";

const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);

/** A teacher that counts its forward passes. */
function countingTeacher(): Teacher & { calls: number } {
  const m = buildModel("regnety_mini", { numClasses: 10 }, 3);
  const t = {
    calls: 0,
    predict(x: tf.Tensor4D) {
      t.calls++;
      return m.predict(x);
    },
  };
  return t;
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) out.push(...(await files(`${dir}/${e.name}`)).map((f) => `${e.name}/${f}`));
    else out.push(e.name);
  }
  return out;
}

Deno.test("teacher cache: a miss computes and stores, a hit gives the same floats without a forward pass", async () => {
  await useBackend("wasm");
  const dir = await Deno.makeTempDir();
  const cache = new TeacherLogitCache(dir, 10);
  const teacher = countingTeacher();
  const xs = Float32Array.from({ length: 4 * 32 * 32 * 3 }, (_, i) => Math.sin(i));
  const run = async (data: Float32Array) => {
    const x = tf.tensor4d(data, [4, 32, 32, 3]);
    const t = await cache.forBatch(teacher, x, data);
    const logits = t.predict(x);
    const values = (await logits.data()) as Float32Array;
    assertThrows(() => t.predict(x), Error, "once"); // it answers its batch once
    tf.dispose([x, logits]);
    return { cached: t.cached, values };
  };
  const first = await run(xs);
  assertEquals([first.cached, teacher.calls, cache.misses, cache.hits], [false, 1, 1, 0]);
  assertEquals((await files(dir)).length, 1);
  const again = await run(xs.slice());
  assertEquals([again.cached, teacher.calls, cache.hits], [true, 1, 1]);
  assertEquals(again.values, first.values); // bit for bit
  // Another batch is another entry.
  const other = xs.map((v) => -v);
  const third = await run(other);
  assertEquals([third.cached, teacher.calls], [false, 2]);
  assertNotEquals(third.values, first.values);
  // A damaged (short) entry is recomputed and rewritten.
  for (const f of await files(dir)) {
    const bytes = await Deno.readFile(`${dir}/${f}`);
    await Deno.writeFile(`${dir}/${f}`, bytes.subarray(0, 12));
  }
  const redone = await run(xs);
  assertEquals([redone.cached, teacher.calls], [false, 3]);
  assertEquals(redone.values, first.values);
  assertEquals((await run(xs)).cached, true);
  assertEquals((await files(dir)).length, 2); // no temporary file left behind
  // A cache that cannot be written (its folder replaced by a file) still answers with the teacher's logits.
  const blocked = `${dir}/blocked`;
  const broken = new TeacherLogitCache(blocked, 10);
  await Deno.remove(blocked);
  await Deno.writeTextFile(blocked, "not a folder");
  const x = tf.tensor4d(xs, [4, 32, 32, 3]);
  for (let i = 0; i < 2; i++) {
    const t = await broken.forBatch(teacher, x, xs);
    const logits = t.predict(x);
    assertEquals([t.cached, await logits.data()], [false, first.values]);
    logits.dispose();
  }
  x.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("teacher cache: another checkpoint or another engine is another folder", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/a.safetensors`, new Uint8Array([1, 2, 3]));
  await Deno.writeFile(`${dir}/b.safetensors`, new Uint8Array([1, 2, 4]));
  const engine = { backend: "wasm", matmul: "blas", ops: "fast" };
  const a = await teacherCacheDir(dir, { name: "regnety_002", checkpoint: `${dir}/a.safetensors`, engine });
  assert(a.startsWith(`${dir}/regnety_002-`), a);
  assertEquals(
    await teacherCacheDir(dir, { name: "regnety_002", checkpoint: `${dir}/a.safetensors`, engine }),
    a,
  );
  const others = [
    await teacherCacheDir(dir, { name: "regnety_002", checkpoint: `${dir}/b.safetensors`, engine }),
    await teacherCacheDir(dir, { name: "regnety_004", checkpoint: `${dir}/a.safetensors`, engine }),
    await teacherCacheDir(dir, {
      name: "regnety_002",
      checkpoint: `${dir}/a.safetensors`,
      engine: { ...engine, ops: "reference" },
    }),
    await teacherCacheDir(dir, {
      name: "regnety_002",
      checkpoint: `${dir}/a.safetensors`,
      engine: { ...engine, backend: "cpu" },
    }),
  ];
  assertEquals(new Set([a, ...others]).size, 5);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "teacher cache: a student trained from cached teacher logits trains exactly as one without the cache",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await useBackend("wasm");
    const teacher = buildModel("regnety_mini", { numClasses: 10 }, 5);
    await saveSafetensors(teacher, `${dir}/teacher.safetensors`, { arch: "regnety_mini" });
    teacher.dispose();
    const student = (cache: boolean) =>
      tinyRunConfig({
        model: "deit_mini_distilled_patch4_28",
        distillation: "token-both",
        teacher: "regnety_mini",
        teacher_checkpoint: `${dir}/teacher.safetensors`,
        teacher_cache: cache,
        epochs: 2,
      });
    const train = async (name: string, cache: boolean) => {
      await Deno.writeTextFile(`${dir}/${name}.json`, JSON.stringify(student(cache)));
      const r = await trainProcess(["--config", `${dir}/${name}.json`, "--out", `${dir}/${name}`], {
        DEIT_TEACHER_CACHE: `${dir}/cache`,
      }).output();
      assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
      return await readRunLog(`${dir}/${name}`);
    };
    // What may differ between the runs: times, and the cache's own count.
    const numbers = (log: Record<string, unknown>[]) =>
      log.map(({ seconds: _s, images_per_s: _i, teacher_cache_hits: _h, ...rest }) => rest);
    const plain = await train("plain", false);
    const cold = await train("cold", true); // computes every teacher logit and stores it
    const warm = await train("warm", true); // reads every one back
    assertEquals(plain.map((l) => l.teacher_cache_hits), [undefined, undefined]);
    assertEquals(cold.map((l) => l.teacher_cache_hits), [0, 0]);
    assertEquals(warm.map((l) => l.teacher_cache_hits), warm.map((l) => l.steps));
    assert(warm[0].steps > 0);
    assertEquals(numbers(cold), numbers(plain));
    assertEquals(numbers(warm), numbers(plain));
    // The final weights and optimiser state too, bit for bit.
    const last = async (name: string) =>
      (await readSafetensors(`${dir}/${name}/checkpoint-last.safetensors`)).tensors;
    const [p, w] = [await last("plain"), await last("warm")];
    assertEquals([...w.keys()].sort(), [...p.keys()].sort());
    for (const [k, t] of p) assertEquals(w.get(k)!.data, t.data, k);
    await Deno.remove(dir, { recursive: true });
  },
});
