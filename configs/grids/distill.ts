/**
 * Distillation (paper Table 3 and the teacher comparison of Table 2) at the grid scale of configs/fmnist-10k.ts:
 * a convnet teacher (RegNetY-200MF) and a transformer teacher (a DeiT of the student's own shape,
 * deit_micro_patch7_28) trained here on the same 10k images, then the student (deit_micro_patch7_28, or its ⚗
 * version with the distillation token) distilled every way of Table 3. Notebook 03 reads these runs; the
 * "no distillation" row is recipe/deit.
 *
 *   deno task sweep --grid recipe,distill         # teachers first, students when their teacher is done
 *
 * The teachers use a light recipe (AdamW, cosine, label smoothing; no RandAugment, Mixup/CutMix or erasing):
 * a teacher wants accuracy, and both teachers get the same one so that their comparison is fair.
 * `paper` is DeiT-B's ImageNet top-1 in Table 3 (soft: τ 3, α 1 on the class token, as the table's row).
 */
import { type Grid, SMOKE_RUN } from "../../lib/sweep/grid.ts";
import { LIGHT } from "../../lib/train/recipes.ts";

const regnet = "{runs}/distill/teacher-regnet";
const deitTeacher = "{runs}/distill/teacher-deit";

export default {
  description:
    "convnet and transformer teachers, and every distillation row of Table 3, on Fashion-MNIST-10k",
  base: "fmnist-10k",
  smoke: SMOKE_RUN,
  rows: [
    {
      name: "teacher-regnet",
      label: "teacher: RegNetY-200MF (convnet)",
      overrides: { ...LIGHT, model: "regnety_002", img_size: 28 },
    },
    {
      name: "teacher-deit",
      label: "teacher: deit_micro_patch7_28 (transformer)",
      overrides: { ...LIGHT, model: "deit_micro_patch7_28" },
    },
    {
      name: "soft",
      label: "usual distillation (soft, τ 3), class token",
      overrides: {
        distillation: "soft-cls",
        distillation_tau: 3,
        teacher: "regnety_002",
        teacher_checkpoint: regnet,
      },
      needs: ["teacher-regnet"],
      paper: 81.8,
    },
    {
      name: "hard",
      label: "hard distillation, class token",
      overrides: { distillation: "hard-cls", teacher: "regnety_002", teacher_checkpoint: regnet },
      needs: ["teacher-regnet"],
      paper: 83.0,
    },
    {
      name: "token",
      label: "DeiT⚗: labels + hard teacher through the distillation token (convnet teacher)",
      overrides: {
        model: "deit_micro_distilled_patch7_28",
        distillation: "token-both",
        teacher: "regnety_002",
        teacher_checkpoint: regnet,
      },
      needs: ["teacher-regnet"],
      paper: 83.4,
    },
    {
      name: "token-deit-teacher",
      label: "DeiT⚗ with the transformer teacher",
      overrides: {
        model: "deit_micro_distilled_patch7_28",
        distillation: "token-both",
        teacher: "deit_micro_patch7_28",
        teacher_checkpoint: deitTeacher,
      },
      needs: ["teacher-deit"],
      paper: 81.9,
    },
  ],
} satisfies Grid;
