/** Backend selection: every backend is reported with a reason, unavailable ones fail clearly, wasm/cpu work. */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { BACKENDS, initBackend, probeAll } from "../lib/accel/backend.ts";

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

Deno.test("the training self-test that auto requires passes on every backend that can train here", async () => {
  const { initBackend, trainingSelfTest } = await import("../lib/accel/backend.ts");
  const { GPU_BACKENDS } = await import("./helpers.ts");
  for (const name of ["cpu", "wasm", ...GPU_BACKENDS]) {
    await initBackend(name);
    const before = tf.memory().numTensors;
    await trainingSelfTest();
    assertEquals(tf.memory().numTensors, before, `${name}: the self-test leaked tensors`);
  }
  // A backend whose read-back fails is refused: the self-test sees the failure.
  await initBackend("cpu");
  const backend = tf.backend() as unknown as { read: (id: unknown) => Promise<unknown> };
  const read = backend.read;
  backend.read = () => Promise.reject(new Error("no read-back here"));
  try {
    await assertRejects(() => trainingSelfTest(), Error, "no read-back here");
  } finally {
    backend.read = read;
  }
});

Deno.test("GPUs a process may use: nvidia-smi's list filtered by CUDA_VISIBLE_DEVICES as CUDA reads it", async () => {
  const { filterVisible, parseNvidiaSmiList } = await import("../lib/accel/gpu_select.ts");
  const all = parseNvidiaSmiList(
    "GPU 0: NVIDIA H200 (UUID: GPU-aaaa-1)\nGPU 1: NVIDIA H200 (UUID: GPU-bbbb-2)\nGPU 2: NVIDIA H200 (UUID: GPU-cccc-3)\n",
  );
  assertEquals(all.map((g) => g.index), [0, 1, 2]);
  const idx = (env: string | undefined) => filterVisible(all, env).map((g) => g.index);
  assertEquals(idx(undefined), [0, 1, 2]);
  assertEquals(idx("2,0"), [2, 0]);
  assertEquals(idx("GPU-bbbb"), [1]);
  assertEquals(idx("1,7,2"), [1]); // CUDA stops at the first invalid entry
  assertEquals(idx(""), []);
});
