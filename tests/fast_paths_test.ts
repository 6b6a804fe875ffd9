/**
 * The fast ops change nothing but speed: a training run with them and one with the plain tf formulation give
 * the same losses step after step (to float precision), and both match the reference fixtures.
 */
import * as tf from "@tensorflow/tfjs";
import { assert } from "@std/assert";
import { modelConfig } from "../lib/models/registry.ts";
import type { Impl } from "../lib/vit/layers.ts";
import { VisionTransformer } from "../lib/vit/model.ts";
import { PARITY_BACKENDS, relErr, trainTiny, useBackend } from "./helpers.ts";

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths train identically over 5 AdamW steps [${backend}]`, async () => {
    await useBackend(backend);
    const fast = await trainTiny(5, "fast"), ref = await trainTiny(5, "reference");
    fast.losses.forEach((l, i) => {
      const e = Math.abs(l - ref.losses[i]) / Math.abs(ref.losses[i]);
      assert(e < 1e-5, `step ${i}: fast ${l} vs reference ${ref.losses[i]} (${e})`);
    });
    assert(ref.losses[4] < ref.losses[0], "the loss should fall on a repeated tiny problem");
    assert(relErr(fast.weights, ref.weights) < 1e-4);
  });
}

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths give the same attention maps and block tokens [${backend}]`, async () => {
    await useBackend(backend);
    const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { seed: 3 });
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const run = (impl: Impl) => {
      model.impl = impl;
      const f = model.forwardFeatures(x, { attention: true, blockTokens: true });
      const out = [f.tokens, ...f.attention!, ...f.blocks!].map((t) => Array.from(t.dataSync()));
      tf.dispose([f.tokens, ...f.attention!, ...f.blocks!]);
      return out;
    };
    const fast = run("fast"), ref = run("reference");
    assert(fast.length === 1 + 2 * 2, `tokens + 2 attention maps + 2 blocks, got ${fast.length}`);
    fast.forEach((v, i) => assert(relErr(v, ref[i]) < 1e-5, `output ${i}: ${relErr(v, ref[i])}`));
    tf.dispose(x);
    model.dispose();
  });
}
