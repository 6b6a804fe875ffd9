/** Every loss against the reference values in losses.json (timm + deit losses.py), tolerance 1e-5 relative. */
import * as tf from "@tensorflow/tfjs";
import { assert, assertThrows } from "@std/assert";
import {
  crossEntropy,
  distillationLoss,
  type DistillationType,
  labelSmoothingCrossEntropy,
  mixupTarget,
  softTargetCrossEntropy,
} from "../lib/distill/losses.ts";
import { FIXTURES, PARITY_BACKENDS, relErr, useBackend } from "./helpers.ts";

const ref = JSON.parse(await Deno.readTextFile(FIXTURES + "losses.json"));
const inp = ref.inputs;

function near(what: string, got: number, want: number) {
  const e = Math.abs(got - want) / Math.abs(want);
  assert(e < 1e-5, `${what}: ${got} vs ${want} (relative ${e.toExponential(2)})`);
}

for (const backend of PARITY_BACKENDS) {
  Deno.test(`losses match deit/timm [${backend}]`, async () => {
    await useBackend(backend);
    tf.tidy(() => {
      const cls = tf.tensor2d(inp.cls_logits), dist = tf.tensor2d(inp.dist_logits);
      const teacher = tf.tensor2d(inp.teacher_logits), labels = tf.tensor1d(inp.labels, "int32");
      near("cross_entropy", crossEntropy({ logits: cls, labels }).dataSync()[0], ref.cross_entropy);
      near(
        "label smoothing",
        labelSmoothingCrossEntropy({ logits: cls, labels, smoothing: inp.smoothing }).dataSync()[0],
        ref["label_smoothing_ce_0.1"],
      );
      const target = mixupTarget({
        labels,
        numClasses: inp.num_classes,
        lam: inp.mixup_lam,
        smoothing: inp.smoothing,
      });
      assert(relErr(target.dataSync(), ref.mixup_target.flat()) < 1e-6, "mixup target");
      const base = softTargetCrossEntropy({ logits: cls, target });
      near("soft-target CE", base.dataSync()[0], ref.soft_target_ce_on_mixup_target);
      for (const [key, want] of Object.entries(ref.distillation)) {
        if (key === "note") continue;
        const m = key.match(/^(none|soft|hard)_alpha([\d.]+)_tau([\d.]+)$/)!;
        const got = distillationLoss({
          base,
          studentKd: dist,
          teacherLogits: teacher,
          type: m[1] as DistillationType,
          alpha: Number(m[2]),
          tau: Number(m[3]),
        });
        near(key, got.dataSync()[0], want as number);
      }
    });
  });
}

Deno.test("soft KL batch-mean option is the numel version times the class count", async () => {
  await useBackend("cpu");
  tf.tidy(() => {
    const dist = tf.tensor2d(inp.dist_logits), teacher = tf.tensor2d(inp.teacher_logits);
    const zero = tf.scalar(0);
    const a = {
      base: zero,
      studentKd: dist,
      teacherLogits: teacher,
      type: "soft" as const,
      alpha: 1,
      tau: 2,
    };
    const numel = distillationLoss(a).dataSync()[0];
    const batch = distillationLoss({ ...a, klReduction: "batchmean" }).dataSync()[0];
    near("batchmean", batch, numel * inp.num_classes);
  });
});

Deno.test("a distillation loss without teacher logits, or of an unknown type, is a clear error", async () => {
  await useBackend("cpu");
  const base = tf.scalar(1), z = tf.zeros([2, 3]) as tf.Tensor2D;
  assertThrows(
    () => distillationLoss({ base, studentKd: z, type: "hard", alpha: 0.5, tau: 1 }),
    Error,
    "teacher",
  );
  assertThrows(
    () =>
      distillationLoss({
        base,
        studentKd: z,
        teacherLogits: z,
        type: "medium" as DistillationType,
        alpha: 0.5,
        tau: 1,
      }),
    Error,
    "unknown distillation type 'medium'",
  );
  tf.dispose([base, z]);
});
