/**
 * The rows of DeiT's Table 3 as named distillation modes: what the student has (distillation token or not),
 * what supervises it (labels, teacher, both; soft or hard), and which head predicts at inference.
 *
 * The reference code refuses the two "teacher only, class token" rows (it requires a distillation token for
 * any distillation); this project runs them.
 */
import * as tf from "@tensorflow/tfjs";
import type { Logits } from "../vit/model.ts";
import {
  crossEntropy,
  distillationLoss,
  type DistillationType,
  labelSmoothingCrossEntropy,
  type LossFn,
  softTargetCrossEntropy,
  type Targets,
} from "./losses.ts";

export interface DistillMode {
  /** One line as in the paper's Table 3. */
  row: string;
  /** The student carries the distillation token and head (DeiT⚗). */
  distToken: boolean;
  /** Distillation term: none, soft (KL at temperature τ) or hard (CE to the teacher's argmax). */
  kd: DistillationType;
  /** Which head learns from the teacher. */
  kdHead: "cls" | "dist";
  /** Default weight of the distillation term, loss = (1 − α)·base + α·kd (Table 3's supervision columns). */
  alpha: number;
  /** Prediction at inference: the class head, the distillation head, or their logits' mean. */
  inference: "cls" | "dist" | "both";
  /** Paper's ImageNet top-1 for DeiT-Ti / S / B / B↑384 (Table 3). */
  paperTop1: readonly [number, number, number, number];
}

export const DISTILL_MODES = {
  none: {
    row: "no distillation (labels only)",
    distToken: false,
    kd: "none",
    kdHead: "cls",
    alpha: 0,
    inference: "cls",
    paperTop1: [72.2, 79.8, 81.8, 83.1],
  },
  "soft-cls": {
    row: "usual distillation: soft, teacher only, class token",
    distToken: false,
    kd: "soft",
    kdHead: "cls",
    alpha: 1,
    inference: "cls",
    paperTop1: [72.2, 79.8, 81.8, 83.2],
  },
  "hard-cls": {
    row: "hard distillation: teacher only, class token",
    distToken: false,
    kd: "hard",
    kdHead: "cls",
    alpha: 1,
    inference: "cls",
    paperTop1: [74.3, 80.9, 83.0, 84.0],
  },
  "token-cls": {
    row: "DeiT⚗ (labels + hard teacher), class embedding at inference",
    distToken: true,
    kd: "hard",
    kdHead: "dist",
    alpha: 0.5,
    inference: "cls",
    paperTop1: [73.9, 80.9, 83.0, 84.2],
  },
  "token-dist": {
    row: "DeiT⚗ (labels + hard teacher), distillation embedding at inference",
    distToken: true,
    kd: "hard",
    kdHead: "dist",
    alpha: 0.5,
    inference: "dist",
    paperTop1: [74.6, 81.1, 83.1, 84.4],
  },
  "token-both": {
    row: "DeiT⚗ (labels + hard teacher), class + distillation at inference (default)",
    distToken: true,
    kd: "hard",
    kdHead: "dist",
    alpha: 0.5,
    inference: "both",
    paperTop1: [74.5, 81.2, 83.4, 84.5],
  },
} as const satisfies Record<string, DistillMode>;

export type DistillModeName = keyof typeof DISTILL_MODES;

export function distillMode(name: string): DistillMode {
  const m = (DISTILL_MODES as Record<string, DistillMode>)[name];
  if (!m) {
    throw new Error(
      `unknown distillation mode '${name}' (choose one of ${Object.keys(DISTILL_MODES).join(", ")})`,
    );
  }
  return m;
}

export interface DistillLossOptions {
  /** Label smoothing of the base criterion when the batch is not mixed (DeiT: 0.1). */
  smoothing: number;
  /** Override the mode's α. */
  alpha?: number;
  /** Temperature of soft distillation (paper: 3). */
  tau?: number;
  klReduction?: "numel" | "batchmean";
}

/**
 * DeiT's base criterion on the class head: soft-target CE when the batch carries Mixup/CutMix targets, else
 * label-smoothing CE when smoothing > 0, else CE (main.py).
 */
export function baseCriterion(cls: tf.Tensor2D, t: Targets, smoothing: number): tf.Scalar {
  if (t.soft) return softTargetCrossEntropy({ logits: cls, target: t.soft });
  if (smoothing > 0) return labelSmoothingCrossEntropy({ logits: cls, labels: t.labels, smoothing });
  return crossEntropy({ logits: cls, labels: t.labels });
}

/** The training loss of a mode; the batch's targets must carry the teacher's logits unless the mode is none. */
export function distillLossFn(name: string, o: DistillLossOptions): LossFn {
  const m = distillMode(name);
  const alpha = o.alpha ?? m.alpha, tau = o.tau ?? 3;
  return (out: Logits, t: Targets) => {
    if (m.distToken !== (out.dist !== undefined)) {
      throw new Error(
        `mode '${name}' needs a student ${m.distToken ? "with" : "without"} a distillation token`,
      );
    }
    const base = baseCriterion(out.cls, t, o.smoothing);
    if (m.kd === "none") return base;
    if (!t.teacher) throw new Error(`mode '${name}' needs the teacher's logits for every batch`);
    const studentKd = m.kdHead === "dist" ? out.dist! : out.cls;
    return distillationLoss({
      base,
      studentKd,
      teacherLogits: t.teacher,
      type: m.kd,
      alpha,
      tau,
      klReduction: o.klReduction,
    });
  };
}

/** The mode's prediction logits at inference. */
export function modeLogits(name: string, out: Logits): tf.Tensor2D {
  const m = distillMode(name);
  if (m.inference === "cls" || !out.dist) return out.cls;
  if (m.inference === "dist") return out.dist;
  return tf.div(tf.add(out.cls, out.dist), 2);
}

/** Checks that a student and a teacher fit a mode, with a message that names the mismatch. */
export function checkDistillSetup(
  name: string,
  student: { distilled: boolean; numClasses: number },
  teacher?: { numClasses: number; name?: string },
): void {
  const m = distillMode(name);
  if (m.distToken !== student.distilled) {
    throw new Error(
      `mode '${name}' needs a student ${m.distToken ? "with" : "without"} a distillation token ` +
        `(choose a ${m.distToken ? "*_distilled_*" : "non-distilled"} model)`,
    );
  }
  if (m.kd !== "none") {
    if (!teacher) throw new Error(`mode '${name}' needs a teacher`);
    if (teacher.numClasses !== student.numClasses) {
      throw new Error(
        `teacher${teacher.name ? ` ${teacher.name}` : ""} predicts ${teacher.numClasses} classes but the ` +
          `student ${student.numClasses}: they must agree`,
      );
    }
  }
}
