/** AdamW and the no-decay rule against the reference values in optim.json (torch.optim.AdamW, DeiT). */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { modelConfig } from "../lib/registry.ts";
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
    const st = opt.getState();
    assertEquals(st.step, 3);
    opt.dispose();
    tf.dispose([...params.values()]);
  });
}
