/** Backend selection: every backend is reported with a reason, unavailable ones fail clearly, wasm/cpu work. */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { BACKENDS, initBackend, probeAll } from "../lib/backend.ts";

Deno.test("probeAll reports every concrete backend, each with a reason", async () => {
  const probes = await probeAll();
  assertEquals(probes.map((p) => p.name), BACKENDS.filter((b) => b !== "auto"));
  for (const p of probes) assert(p.detail.length > 10, `${p.name}: no reason given`);
  assert(probes.find((p) => p.name === "wasm")!.available);
  assert(probes.find((p) => p.name === "cpu")!.available);
});

Deno.test("auto takes the first available backend and lists why the earlier ones were skipped", async () => {
  const probes = await probeAll();
  const choice = await initBackend("auto");
  const order = ["tensorflow", "webgpu", "wasm", "cpu"];
  const first = order.find((n) => probes.find((p) => p.name === n)!.available)!;
  assertEquals(choice.name, first);
  assertEquals(tf.getBackend(), first);
  assertEquals(choice.skipped.map((s) => s.name), order.slice(0, order.indexOf(first)));
});

Deno.test("an unknown or unavailable backend is a clear error and leaves the others working", async () => {
  await assertRejects(() => initBackend("tpu"), Error, "unknown backend 'tpu'");
  const tfjsNodePresent = (await probeAll()).find((p) => p.name === "tensorflow")!.available;
  if (!tfjsNodePresent) {
    await assertRejects(() => initBackend("tensorflow"), Error, "tfjs-node-gpu@4.22.0");
  }
  for (const b of ["wasm", "cpu"] as const) {
    const c = await initBackend(b);
    assertEquals(c.name, b);
    const y = tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync());
    assertEquals(Array.from(y), [3, 3, 3, 3]);
  }
});
