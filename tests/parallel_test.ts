/**
 * Data parallelism over workers gives the results of one engine on the whole batch: same losses and same
 * weights after several AdamW steps (up to float rounding), same eval logits.
 */
import * as tf from "@tensorflow/tfjs";
import { assert } from "@std/assert";
import { DataParallel } from "../lib/train/parallel/data_parallel.ts";
import { buildModel } from "../lib/models/registry.ts";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { relErr, stepLoss, useBackend } from "./helpers.ts";

const MODEL = "deit_mini_distilled_patch8_32";

function batch(seed: number, B = 6): { x: Float32Array; labels: Int32Array } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return {
    x: Float32Array.from({ length: B * 32 * 32 * 3 }, rnd),
    labels: Int32Array.from({ length: B }, (_, i) => (i * 7 + seed) % 10),
  };
}

Deno.test("2 workers train exactly like 1 engine with the same total batch", async () => {
  await useBackend("wasm");
  const single = buildModel(MODEL, {}, 4);
  const dpModel = buildModel(MODEL, {}, 4);
  const dp = await DataParallel.start(
    dpModel,
    { name: MODEL, overrides: {} },
    { workers: 2, backend: "wasm" },
  );
  const noDecay = new Set([...single.torchShapes()].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k));
  const opt = new AdamW(single.params, { noDecay });
  try {
    for (let step = 0; step < 3; step++) {
      const { x, labels } = batch(step + 1);
      const shape: [number, number, number, number] = [6, 32, 32, 3];
      const xt = tf.tensor4d(x, shape), yt = tf.tensor1d(labels, "int32");
      const l1 = await stepLoss(single, opt, xt, { labels: yt }, { lr: 1e-3 });
      tf.dispose([xt, yt]);
      const [l2] = await dp.step(x.slice(), shape, labels.slice(), 1e-3);
      assert(Math.abs(l1 - l2) / Math.abs(l1) < 1e-5, `step ${step}: loss ${l1} vs ${l2}`);
    }
    const w = await dp.weights();
    const D = single.config.embedDim;
    for (const [k, v] of single.params) {
      let [a, b] = [w[k], v.dataSync() as Float32Array];
      if (k.endsWith("attn.qkv.bias")) {
        // The key bias adds q·b_k to a whole row of scores, which softmax ignores: its gradient is 0 in exact
        // arithmetic and rounding noise in practice, which Adam's normalisation turns into ±lr steps that
        // differ with the summation order. Compare the query and value parts only.
        [a, b] = [a, b].map((t) => Float32Array.from([...t.subarray(0, D), ...t.subarray(2 * D)]));
      }
      const e = relErr(a, b);
      assert(e < 1e-5, `${k}: weights differ by ${e}`);
    }
    const { x } = batch(9);
    const logits = await dp.predict(x.slice(), [6, 32, 32, 3]);
    const xt = tf.tensor4d(x, [6, 32, 32, 3]);
    const ref = single.predict(xt);
    assert(relErr(logits, ref.dataSync()) < 1e-5);
    tf.dispose([xt, ref]);
  } finally {
    await dp.close();
    opt.dispose();
    single.dispose();
    dpModel.dispose();
  }
});

Deno.test("with a frozen RegNet teacher and DeiT⚗'s loss, 2 workers match 1 engine", async () => {
  await useBackend("wasm");
  const { buildRegNet } = await import("../lib/models/registry.ts");
  const { distillLossFn } = await import("../lib/distill/modes.ts");
  const teacher = buildRegNet("regnety_mini", {}, 8);
  const single = buildModel(MODEL, {}, 4);
  const dpModel = buildModel(MODEL, {}, 4);
  const lossSpec = { kind: "distill" as const, mode: "token-both", smoothing: 0.1, tau: 3 };
  const dp = await DataParallel.start(dpModel, { name: MODEL, overrides: {} }, {
    workers: 2,
    backend: "wasm",
    loss: lossSpec,
    teacher: { name: "regnety_mini", model: teacher },
  });
  const opt = new AdamW(single.params, {
    noDecay: new Set([...single.torchShapes()].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k)),
  });
  const lossFn = distillLossFn("token-both", { smoothing: 0.1, tau: 3 });
  try {
    for (let step = 0; step < 2; step++) {
      const { x, labels } = batch(step + 20);
      const shape: [number, number, number, number] = [6, 32, 32, 3];
      const xt = tf.tensor4d(x, shape), yt = tf.tensor1d(labels, "int32");
      const l1 = await stepLoss(single, opt, xt, { labels: yt }, { lr: 1e-3, teacher, lossFn });
      tf.dispose([xt, yt]);
      const [l2] = await dp.step(x.slice(), shape, labels.slice(), 1e-3);
      assert(Math.abs(l1 - l2) / Math.abs(l1) < 1e-5, `step ${step}: loss ${l1} vs ${l2}`);
    }
  } finally {
    await dp.close();
    opt.dispose();
    single.dispose();
    dpModel.dispose();
    teacher.dispose();
  }
});

Deno.test("a RegNet student trains data-parallel: replicas keep identical weights and BatchNorm statistics", async () => {
  await useBackend("wasm");
  const { buildRegNet } = await import("../lib/models/registry.ts");
  const net = buildRegNet("regnety_mini", {}, 3);
  const before = net.buffers.get("stem.bn.running_mean")!.dataSync().slice();
  const dp = await DataParallel.start(net, { name: "regnety_mini", overrides: {} }, {
    workers: 2,
    backend: "wasm",
  });
  try {
    for (let step = 0; step < 2; step++) {
      const { x, labels } = batch(step + 40);
      const [loss] = await dp.step(x, [6, 32, 32, 3], labels, 1e-3);
      assert(Number.isFinite(loss));
    }
    const [a, b] = await dp.getState();
    for (const k of Object.keys(a.weights)) {
      assert(relErr(a.weights[k], b.weights[k]) === 0, `${k} differs between ranks`);
    }
    assert(relErr(a.weights["stem.bn.running_mean"], before) > 0, "running statistics did not move");
  } finally {
    await dp.close();
    net.dispose();
  }
});
