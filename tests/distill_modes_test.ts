/**
 * Table 3's modes: each produces its loss terms on a tiny model, predicts with its head, keeps the teacher
 * frozen; mismatched set-ups are clear errors.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  checkDistillSetup,
  DISTILL_MODES,
  distillLossFn,
  distillMode,
  modeLogits,
} from "../lib/distill/modes.ts";
import { crossEntropy, labelSmoothingCrossEntropy } from "../lib/distill/losses.ts";
import { buildModel } from "../lib/models/registry.ts";
import { AdamW } from "../lib/train/optim.ts";
import { stepLoss, useBackend } from "./helpers.ts";

const near = (a: number, b: number, what: string) =>
  assert(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

Deno.test("every Table 3 mode computes its own loss terms", async () => {
  await useBackend("cpu");
  tf.tidy(() => {
    const cls = tf.randomNormal([4, 10], 0, 2, "float32", 1) as tf.Tensor2D;
    const dist = tf.randomNormal([4, 10], 0, 2, "float32", 2) as tf.Tensor2D;
    const teacher = tf.randomNormal([4, 10], 0, 2, "float32", 3) as tf.Tensor2D;
    const labels = tf.tensor1d([1, 2, 3, 4], "int32");
    const tArg = tf.argMax(teacher, 1) as tf.Tensor1D;
    const ls = (z: tf.Tensor2D) =>
      labelSmoothingCrossEntropy({ logits: z, labels, smoothing: 0.1 }).dataSync()[0];
    const ce = (z: tf.Tensor2D, y: tf.Tensor1D) => crossEntropy({ logits: z, labels: y }).dataSync()[0];
    const kl = (z: tf.Tensor2D, tau: number) => {
      const p = tf.softmax(tf.div(teacher, tau));
      const v = tf.sum(tf.mul(p, tf.sub(tf.log(p), tf.logSoftmax(tf.div(z, tau))))).dataSync()[0];
      return (v / z.size) * tau * tau;
    };
    const targets = { labels, teacher };
    const loss = (mode: string, out: { cls: tf.Tensor2D; dist?: tf.Tensor2D }) =>
      distillLossFn(mode, { smoothing: 0.1, tau: 3 })(out, targets).dataSync()[0];
    near(loss("none", { cls }), ls(cls), "none");
    near(loss("soft-cls", { cls }), kl(cls, 3), "soft-cls");
    near(loss("hard-cls", { cls }), ce(cls, tArg), "hard-cls");
    for (const m of ["token-cls", "token-dist", "token-both"]) {
      near(loss(m, { cls, dist }), 0.5 * ls(cls) + 0.5 * ce(dist, tArg), m);
    }
    // Inference heads.
    assertEquals(Array.from(modeLogits("token-cls", { cls, dist }).dataSync()), Array.from(cls.dataSync()));
    assertEquals(Array.from(modeLogits("token-dist", { cls, dist }).dataSync()), Array.from(dist.dataSync()));
    const both = tf.div(tf.add(cls, dist), 2).dataSync();
    assertEquals(Array.from(modeLogits("token-both", { cls, dist }).dataSync()), Array.from(both));
  });
  assertEquals(Object.keys(DISTILL_MODES).length, 6);
});

Deno.test("the teacher runs frozen: its weights are unchanged after a student step, the student's change", async () => {
  await useBackend("cpu");
  const student = buildModel("deit_mini_distilled_patch8_32", {}, 1);
  const teacher = buildModel("vit_mini_patch8_32", {}, 2); // a transformer teacher
  const before = new Map([...teacher.params].map(([k, v]) => [k, v.dataSync().slice()]));
  const sBefore = student.params.get("head_dist.weight")!.dataSync().slice();
  const opt = new AdamW(student.params);
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const labels = tf.tensor1d([0, 1, 2, 3], "int32");
  const loss = await stepLoss(student, opt, x, { labels }, {
    lr: 1e-3,
    teacher,
    lossFn: distillLossFn("token-both", { smoothing: 0.1 }),
  });
  assert(Number.isFinite(loss));
  for (const [k, v] of teacher.params) {
    assertEquals(v.dataSync(), before.get(k), `teacher weight ${k} changed`);
  }
  assert(student.params.get("head_dist.weight")!.dataSync().some((v, i) => v !== sBefore[i]));
  tf.dispose([x, labels]);
  opt.dispose();
  student.dispose();
  teacher.dispose();
});

Deno.test("a bad mode, a student without the needed token, or a teacher with other classes are clear errors", () => {
  assertThrows(() => distillMode("token-all"), Error, "unknown distillation mode 'token-all'");
  assertThrows(
    () => checkDistillSetup("token-both", { distilled: false, numClasses: 10 }, { numClasses: 10 }),
    Error,
    "needs a student with a distillation token",
  );
  assertThrows(
    () =>
      checkDistillSetup("hard-cls", { distilled: false, numClasses: 10 }, {
        numClasses: 1000,
        name: "regnety_160",
      }),
    Error,
    "teacher regnety_160 predicts 1000 classes but the student 10",
  );
  assertThrows(
    () => checkDistillSetup("soft-cls", { distilled: false, numClasses: 10 }),
    Error,
    "needs a teacher",
  );
  checkDistillSetup("none", { distilled: false, numClasses: 10 });
  const out = { cls: tf.zeros([1, 3]) as tf.Tensor2D };
  assertThrows(
    () => distillLossFn("hard-cls", { smoothing: 0 })(out, { labels: tf.tensor1d([0], "int32") }),
    Error,
    "teacher's logits",
  );
});
