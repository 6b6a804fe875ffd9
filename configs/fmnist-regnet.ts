/**
 * fmnist-regnet — a convnet teacher for the Fashion-MNIST distillation experiments: RegNetY-200MF (timm's
 * regnety_002 generator) trained from scratch on 28×28 Fashion-MNIST with a light recipe (AdamW, cosine, label
 * smoothing; no RandAugment, Mixup/CutMix or erasing — a teacher wants accuracy, not the student's regularisation).
 *
 *   deno task train --config fmnist-regnet          # results/runs/fmnist-regnet; then use it as
 *   deno task train --config fmnist-deit --model deit_mini_distilled_patch4_28 --distillation token-both \
 *     --teacher regnety_002 --teacher_checkpoint results/runs/fmnist-regnet --out results/runs/fmnist-deit-distilled
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { LIGHT } from "../lib/train/recipes.ts";

export default {
  description: "RegNetY-200MF teacher on Fashion-MNIST",
  config: {
    model: "regnety_002",
    dataset: "fashion-mnist",
    train_split: "train",
    val_split: "test",
    img_size: 28,
    epochs: 15,
    warmup_epochs: 1,
    batch_size: 256,
    lr: 2e-3,
    ...LIGHT,
  },
} satisfies ConfigFile;
