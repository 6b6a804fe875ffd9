/**
 * fmnist-vit-plain — the ViT baseline of the walkthrough: the same small model as fmnist-deit trained on
 * Fashion-MNIST with a plain recipe (AdamW and the cosine schedule, but no RandAugment, Mixup, CutMix, random
 * erasing, stochastic depth, label smoothing or repeated augmentation) — the "ViT trained without DeiT's
 * recipe" row, and the 100-epoch twin of configs/fmnist-deit.ts (claim (a) of results/claims.md: the same model,
 * data, optimiser, schedule and epochs, without DeiT's regularisation).
 *
 *   deno task sweep --grid headline                # results/runs/headline/fmnist-vit-plain (resumes by itself)
 *   deno task train --config fmnist-vit-plain
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { PLAIN } from "../lib/train/recipes.ts";

export default {
  description: "small ViT on Fashion-MNIST, plain recipe (baseline)",
  config: {
    model: "deit_mini_patch4_28",
    dataset: "fashion-mnist",
    train_split: "train",
    val_split: "test",
    epochs: 100,
    warmup_epochs: 3,
    batch_size: 256,
    lr: 2e-3,
    min_lr: 1e-5,
    ...PLAIN,
    // Training-set accuracy (5,000 images, eval transform) beside the test accuracy: does the plain recipe overfit?
    train_eval_limit: 5000,
  },
} satisfies ConfigFile;
