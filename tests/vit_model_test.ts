/**
 * Every registered ViT variant builds with timm's parameter count, gives `{cls, dist?}` of the right shape in
 * both modes with no NaN, every weight receives a gradient, and a training step leaks no tensors.
 * Built at a small input size (the position grid follows the image size) so this runs on CPU in seconds.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertThrows } from "@std/assert";
import { modelConfig, modelNames, MODELS, summarize } from "../lib/models/registry.ts";
import { dropPathRates, inferenceLogits, VisionTransformer } from "../lib/vit/model.ts";
import { vitConfig } from "../lib/vit/config.ts";
import { useBackend } from "./helpers.ts";

const TIMM_PARAMS: Record<string, number> = {
  deit_tiny_patch16_224: 5_717_416,
  deit_small_patch16_224: 22_050_664,
  deit_base_patch16_224: 86_567_656,
  deit_base_patch16_384: 86_859_496,
  deit_tiny_distilled_patch16_224: 5_910_800,
  deit_small_distilled_patch16_224: 22_436_432,
  deit_base_distilled_patch16_224: 87_338_192,
  deit_base_distilled_patch16_384: 87_630_032,
};

Deno.test("registry parameter counts equal timm's for the 8 DeiT variants", () => {
  for (const [name, n] of Object.entries(TIMM_PARAMS)) assertEquals(summarize(name).params, n, name);
  assertEquals(summarize("deit_base_patch16_384").gflops.toFixed(1), "55.5");
  assertEquals(summarize("deit_tiny_patch16_224").gflops.toFixed(1), "1.3");
});

for (const name of modelNames("vit")) {
  Deno.test(`${name}: builds, right shapes, no NaN, every weight gets a gradient, no leak`, async () => {
    await useBackend("wasm");
    const full = modelConfig(name);
    // Same widths and depth; a 2×2 patch grid keeps the forward pass cheap; 7 classes.
    const model = new VisionTransformer({
      ...full,
      imgSize: full.patchSize * 2,
      numClasses: 7,
      dropPathRate: 0.1,
    });
    const x = tf.randomNormal([2, model.config.imgSize, model.config.imgSize, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (const training of [false, true]) {
      const out = model.forward(x, { training });
      assertEquals(out.cls.shape, [2, 7]);
      assertEquals(out.dist?.shape, full.distilled ? [2, 7] : undefined);
      assert(!tf.tidy(() => tf.any(tf.isNaN(out.cls)).dataSync()[0]), "NaN in logits");
      tf.dispose([out.cls, out.dist!].filter(Boolean));
    }
    const vars = [...model.params.values()];
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forward(x, { training: true });
      const l = tf.sum(tf.square(out.cls));
      return (out.dist ? tf.add(l, tf.sum(tf.square(out.dist))) : l) as tf.Scalar;
    }, vars);
    for (const [k, v] of model.params) {
      const g = grads[v.name];
      assert(g, `${k} received no gradient`);
      assertEquals(g.shape, v.shape);
      assert(tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]) > 0, `${k}: gradient is all zero`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    assertEquals(tf.memory().numTensors, before, "tensors leaked by forward/backward");
    x.dispose();
    model.dispose();
  });
}

Deno.test("distilled inference averages the two heads' logits", async () => {
  await useBackend("cpu");
  const m = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { seed: 3 });
  const x = tf.randomNormal([2, 32, 32, 3]) as tf.Tensor4D;
  const out = m.forward(x);
  const want = tf.div(tf.add(out.cls, out.dist!), 2);
  assertEquals(Array.from(m.predict(x).dataSync()), Array.from(want.dataSync()));
  assertEquals(Array.from(inferenceLogits({ cls: out.cls }).dataSync()), Array.from(out.cls.dataSync()));
  m.dispose();
});

Deno.test("stochastic depth: rate rises linearly over the blocks; eval mode is deterministic", async () => {
  await useBackend("cpu");
  assertEquals(dropPathRates(vitConfig({ depth: 5, dropPathRate: 0.1 })).map((r) => +r.toFixed(6)), [
    0,
    0.025,
    0.05,
    0.075,
    0.1,
  ]);
  const m = new VisionTransformer({ ...modelConfig("vit_mini_patch8_32"), dropPathRate: 0.5 }, { seed: 1 });
  const x = tf.randomNormal([4, 32, 32, 3]) as tf.Tensor4D;
  const a = m.forward(x).cls.dataSync(), b = m.forward(x).cls.dataSync();
  assertEquals(Array.from(a), Array.from(b));
  const t1 = m.forward(x, { training: true }).cls.dataSync();
  assert(Array.from(t1).some((v, i) => v !== a[i]), "training mode with drop path 0.5 changed nothing");
  m.dispose();
});

Deno.test("the same seed gives the same weights; a bad shape is a clear error", async () => {
  await useBackend("cpu");
  const a = new VisionTransformer(modelConfig("vit_mini_patch8_32"), { seed: 5 });
  const b = new VisionTransformer(modelConfig("vit_mini_patch8_32"), { seed: 5 });
  for (const k of a.paramNames) {
    assertEquals(Array.from(a.params.get(k)!.dataSync()), Array.from(b.params.get(k)!.dataSync()));
  }
  assertThrows(() => vitConfig({ imgSize: 30, patchSize: 8 }), Error, "not a multiple");
  assertThrows(() => vitConfig({ embedDim: 50, numHeads: 3 }), Error, "divisible");
  assertThrows(() => modelConfig("deit_huge"), Error, "unknown model");
  assertThrows(() => a.forward(tf.zeros([1, 28, 28, 3]) as tf.Tensor4D), Error, "expects 32×32×3");
  assert(Object.keys(MODELS).length >= 8);
  a.dispose();
  b.dispose();
});
