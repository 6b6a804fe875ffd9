/**
 * Parity with the reference implementation (timm + DeiT, PyTorch 1.13) on the fixtures in
 * shared/fixtures/reference, on every backend in PARITY_BACKENDS, and on WebGPU where an adapter exists (Mesa's
 * software adapter in CI). Tolerances from the fixtures' README:
 * logits/features 1e-4 relative, gradients 1e-3, losses 1e-5.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { VisionTransformer } from "../lib/vit/model.ts";
import { modelConfig } from "../lib/registry.ts";
import { loadCheckpoint } from "../lib/checkpoint.ts";
import { resamplePosEmbed } from "../lib/vit/posembed.ts";
import {
  fixture,
  FIXTURES,
  GPU_BACKENDS,
  nchwToNhwc,
  PARITY_BACKENDS,
  relErr,
  useBackend,
} from "./helpers.ts";
import type { Impl } from "../lib/vit/layers.ts";

/** Both implementations of every op: the fast one (lib/ops.ts) and the plain tf formulation. */
const IMPLS: Impl[] = ["fast", "reference"];

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  const e = relErr(got, want);
  assert(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

function ce(logits: tf.Tensor2D, labels: Int32Array, classes: number): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, "int32"), classes), logits);
}

for (
  const [backend, impl] of [...PARITY_BACKENDS, ...GPU_BACKENDS].flatMap((b) =>
    IMPLS.map((i) => [b, i] as const)
  )
) {
  Deno.test(`vit_mini eval logits match timm [${backend}, ${impl}]`, async () => {
    await useBackend(backend);
    const model = new VisionTransformer(modelConfig("vit_mini_patch8_32"), { impl });
    await loadCheckpoint(model, FIXTURES + "vit_mini.safetensors");
    const c = await fixture("vit_mini_case.safetensors");
    const input = c.get("input")!;
    const x = nchwToNhwc(input.data as Float32Array, input.shape);
    const logits = model.predict(x);
    close("eval_logits", await logits.data(), c.get("eval_logits")!.data, 1e-4);
    tf.dispose([x, logits]);
    model.dispose();
  });

  for (const file of ["vit_mini_distilled.pth", "vit_mini_distilled.safetensors"]) {
    Deno.test(`${file}: logits, features, loss and every gradient match [${backend}, ${impl}]`, async () => {
      await useBackend(backend);
      const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { impl });
      const report = await loadCheckpoint(model, FIXTURES + file);
      assertEquals(report.skipped, []);
      const c = await fixture("vit_mini_distilled_case.safetensors");
      const input = c.get("input")!;
      const x = nchwToNhwc(input.data as Float32Array, input.shape);

      const evalLogits = model.predict(x);
      close("eval_logits", await evalLogits.data(), c.get("eval_logits")!.data, 1e-4);
      const feats = tf.tidy(() => model.forwardFeatures(x).tokens);
      assertEquals(feats.shape, [3, 18, 48]);
      close("features", await feats.data(), c.get("features")!.data, 1e-4);

      const label = c.get("label")!.data as Int32Array;
      const teacher = c.get("teacher_label")!.data as Int32Array;
      const names = model.paramNames;
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward(x, { training: true });
        return tf.add(tf.mul(ce(out.cls, label, 10), 0.5), tf.mul(ce(out.dist!, teacher, 10), 0.5));
      }, names.map((n) => model.params.get(n)!));
      close("loss", await value.data(), c.get("loss")!.data, 1e-5);
      const train = model.forward(x, { training: true });
      close("train_cls_logits", await train.cls.data(), c.get("train_cls_logits")!.data, 1e-4);
      close("train_dist_logits", await train.dist!.data(), c.get("train_dist_logits")!.data, 1e-4);

      const shapes = model.torchShapes();
      let checked = 0;
      for (const n of names) {
        const want = c.get(`grad.${n}`);
        if (!want) throw new Error(`fixture has no grad.${n}`);
        const v = model.params.get(n)!;
        const g = grads[v.name];
        assert(g, `no gradient for ${n}`);
        const got = model.toTorch(n, shapes.get(n)!, ((await g.data()) as Float32Array).slice());
        close(`grad.${n}`, got, want.data, 1e-3);
        checked++;
      }
      assertEquals(checked, [...c.keys()].filter((k) => k.startsWith("grad.")).length);
      tf.dispose([x, evalLogits, feats, value, train.cls, train.dist!, ...Object.values(grads)]);
      model.dispose();
    });
  }
}

Deno.test("position embedding resampling matches F.interpolate bicubic (4×4 → 6×6, 3×3)", async () => {
  const f = await fixture("posembed_resample.safetensors");
  const src = f.get("pos_embed_4x4")!.data as Float32Array;
  close("6x6", resamplePosEmbed(src, 2, 4, 6, 48), f.get("pos_embed_6x6")!.data, 1e-5);
  close("3x3", resamplePosEmbed(src, 2, 4, 3, 48), f.get("pos_embed_3x3")!.data, 1e-5);
});

Deno.test("a checkpoint with another position grid is resampled on load", async () => {
  await useBackend("cpu");
  // The fixture checkpoint has a 4×4 grid (img 32, patch 8); a 48-pixel model has 6×6.
  const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32", { imgSize: 48 }));
  const report = await loadCheckpoint(model, FIXTURES + "vit_mini_distilled.safetensors");
  assertEquals(report.adapted.length, 1);
  assert(report.adapted[0].includes("4×4 to a 6×6"));
  const ckpt = await fixture("vit_mini_distilled.safetensors");
  const want = resamplePosEmbed(ckpt.get("pos_embed")!.data as Float32Array, 2, 4, 6, 48);
  close("pos_embed", await model.params.get("pos_embed")!.data(), want, 1e-6);
  model.dispose();
});
