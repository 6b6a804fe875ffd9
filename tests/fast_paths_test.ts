/**
 * The fast ops change nothing but speed: a training run with them and one with the plain tf formulation give
 * the same losses step after step (to float precision), and both match the reference fixtures.
 */
import * as tf from "@tensorflow/tfjs";
import { assert } from "@std/assert";
import { buildModel } from "../lib/registry.ts";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { trainStep } from "../lib/train/step.ts";
import type { Impl } from "../lib/vit/layers.ts";
import { PARITY_BACKENDS, relErr, useBackend } from "./helpers.ts";

function run(impl: Impl, steps: number): { losses: number[]; weights: Float32Array } {
  // drop path on: both paths draw the same masks from the same seeded generator.
  const model = buildModel("deit_mini_distilled_patch8_32", { dropPathRate: 0.1 }, 11);
  model.impl = impl;
  const noDecay = new Set([...model.torchShapes()].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k));
  const opt = new AdamW(model.params, { noDecay });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, "float32", 100 + i) as tf.Tensor4D;
    const y = tf.tensor1d([i % 10, (i + 3) % 10, (i + 5) % 10, 1], "int32");
    losses.push(trainStep(model, opt, x, { labels: y }, { lr: 5e-4 }));
    tf.dispose([x, y]);
  }
  const weights = (model.params.get("blocks.1.mlp.fc2.weight")!.dataSync() as Float32Array).slice();
  opt.dispose();
  model.dispose();
  return { losses, weights };
}

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths train identically over 5 AdamW steps [${backend}]`, async () => {
    await useBackend(backend);
    const fast = run("fast", 5), ref = run("reference", 5);
    fast.losses.forEach((l, i) => {
      const e = Math.abs(l - ref.losses[i]) / Math.abs(ref.losses[i]);
      assert(e < 1e-5, `step ${i}: fast ${l} vs reference ${ref.losses[i]} (${e})`);
    });
    assert(ref.losses[4] < ref.losses[0], "the loss should fall on a repeated tiny problem");
    assert(relErr(fast.weights, ref.weights) < 1e-4);
  });
}
