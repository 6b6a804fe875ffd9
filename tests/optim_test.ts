/** AdamW and the no-decay rule against the reference values in optim.json (torch.optim.AdamW, DeiT). */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { modelConfig } from "../lib/models/registry.ts";
import { vitParamShapes } from "../lib/vit/config.ts";
import { FIXTURES, PARITY_BACKENDS, relErr, useBackend } from "./helpers.ts";

const optim = JSON.parse(await Deno.readTextFile(FIXTURES + "optim.json"));

Deno.test("no-decay rule gives exactly DeiT's list for the mini distilled ViT", () => {
  const shapes = vitParamShapes(modelConfig("deit_mini_distilled_patch8_32"));
  const got = [...shapes].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k).sort();
  assertEquals(got, [...optim.no_weight_decay_params_vit_mini_distilled].sort());
  assert(!noWeightDecay("dist_token", [1, 1, 48]), "the distillation token is decayed in DeiT");
});

for (const backend of PARITY_BACKENDS) {
  Deno.test(`AdamW: three steps match torch.optim.AdamW [${backend}]`, async () => {
    await useBackend(backend);
    const a = optim.adamw;
    const params = new Map<string, tf.Variable>([["w", tf.variable(tf.tensor2d(a.w0))], [
      "b",
      tf.variable(tf.tensor1d(a.b0)),
    ]]);
    const opt = new AdamW(params, {
      betas: a.betas,
      eps: a.eps,
      weightDecay: a.weight_decay.w,
      noDecay: new Set(a.weight_decay.b === 0 ? ["b"] : []),
    });
    for (let i = 0; i < 3; i++) {
      const g = new Map<string, tf.Tensor>([["w", tf.tensor2d(a.grads_w[i])], [
        "b",
        tf.tensor1d(a.grads_b[i]),
      ]]);
      opt.apply(g, a.lr);
      tf.dispose([...g.values()]);
    }
    const e1 = relErr(params.get("w")!.dataSync(), a.w_after_3.flat());
    const e2 = relErr(params.get("b")!.dataSync(), a.b_after_3);
    assert(e1 < 1e-5 && e2 < 1e-5, `w ${e1}, b ${e2}`);
    const st = await opt.getState();
    assertEquals(st.step, 3);
    opt.dispose();
    tf.dispose([...params.values()]);
  });
}

Deno.test("cosine schedule per epoch equals timm's CosineLRScheduler as DeiT sets it (300 epochs)", async () => {
  const { lrAt, scaledLr } = await import("../lib/train/schedule.ts");
  const s = { lr: scaledLr(5e-4, 1024), epochs: 300, warmupEpochs: 5, warmupLr: 1e-6, minLr: 1e-5 };
  const want: number[] = optim.cosine_lr_per_epoch;
  assertEquals(want.length, 300);
  want.forEach((w, e) => assert(Math.abs(lrAt(s, e) - w) <= 1e-5 * w, `epoch ${e}: ${lrAt(s, e)} vs ${w}`));
  assertEquals(lrAt(s, 400), 1e-5);
  assert(lrAt(s, 2.5) > lrAt(s, 2) && lrAt(s, 2.5) < lrAt(s, 3), "per-step values lie between epochs");
});

Deno.test("SGD with momentum and coupled decay, gradient clipping, EMA follow PyTorch/timm's formulas", async () => {
  await useBackend("cpu");
  const { Sgd, clipGradNorm, Ema } = await import("../lib/train/optim.ts");
  const p = new Map<string, tf.Variable>([["w", tf.variable(tf.tensor1d([1, -2]))]]);
  const sgd = new Sgd(p, { momentum: 0.9, weightDecay: 0.1 });
  // Hand-computed: g1 = [0.5, 0.5] + 0.1·w = [0.6, 0.3]; b = g1; w = [1, -2] − 0.1·b = [0.94, -2.03]
  sgd.apply(new Map([["w", tf.tensor1d([0.5, 0.5])]]), 0.1);
  assert(relErr(p.get("w")!.dataSync(), [0.94, -2.03]) < 1e-6);
  // g2 = [0.5, 0.5] + 0.1·[0.94, -2.03] = [0.594, 0.297]; b = 0.9·[0.6, 0.3] + g2 = [1.134, 0.567]
  sgd.apply(new Map([["w", tf.tensor1d([0.5, 0.5])]]), 0.1);
  assert(relErr(p.get("w")!.dataSync(), [0.94 - 0.1134, -2.03 - 0.0567]) < 1e-6);
  const g = new Map<string, tf.Tensor>([["a", tf.tensor1d([3, 0])], ["b", tf.tensor1d([0, 4])]]);
  const norm = clipGradNorm(g, 1);
  assertEquals((await norm.data())[0], 5);
  norm.dispose();
  assert(relErr(g.get("b")!.dataSync(), [0, 0.8]) < 1e-5);
  const ema = new Ema(p, 0.5);
  const w0 = p.get("w")!.dataSync().slice();
  p.get("w")!.assign(tf.tensor1d([0, 0]));
  ema.update(p);
  assert(relErr(ema.shadow.get("w")!.dataSync(), w0.map((v) => v / 2)) < 1e-6);
  sgd.dispose();
  ema.dispose();
});
