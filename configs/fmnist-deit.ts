/**
 * fmnist-deit — a small DeiT (deit_mini_patch4_28: dim 96, depth 6, 3 heads, patch 4 on 28×28) trained from
 * scratch on Fashion-MNIST with the full DeiT recipe (AdamW, cosine + warm-up, label smoothing, RandAugment
 * rand-m9-mstd0.5-inc1, Mixup 0.8 / CutMix 1.0, random erasing 0.25, stochastic depth 0.1, repeated
 * augmentation ×3). For 28-px images DeiT's small-image rule applies: random crop with padding 4 + flip
 * instead of RandomResizedCrop.
 *
 *   deno task sweep --grid headline                 # results/runs/headline/fmnist-deit (resumes by itself)
 *   deno task train --config fmnist-deit --out results/runs/headline/fmnist-deit --resume   # the same, alone
 *
 * Target: ≥ 90% test top-1 (the acceptance bar of the training issue). Reached: 90.61% after 100 epochs
 * (best 90.74%; results/runs/headline/fmnist-deit/log.jsonl), 3.97 h of epoch time on the 2-core development
 * machine with 2 workers, ~2 min an epoch with session 4's kernels. The same config for 25 epochs ended at
 * 80.04% (results/runs/headline/fmnist-deit-25ep): with repeated augmentation an epoch shows each image's three
 * augmentations to a third of the set, and at short schedules every DeiT regulariser but Mixup costs accuracy
 * here (results/ablation.md). It resumes from its checkpoints.
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "small DeiT on Fashion-MNIST with the full DeiT recipe",
  config: {
    model: "deit_mini_patch4_28",
    dataset: "fashion-mnist",
    train_split: "train",
    val_split: "test",
    epochs: 100,
    warmup_epochs: 3,
    batch_size: 256,
    // DeiT's 5e-4 per 512 images is tuned for 300 ImageNet epochs; a short run on a small dataset takes a
    // larger step (scaled by batch/512 as always: 2e-3 × 256/512 = 1e-3).
    lr: 2e-3,
    min_lr: 1e-5,
  },
} satisfies ConfigFile;
