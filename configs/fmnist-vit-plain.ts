/**
 * fmnist-vit-plain — the ViT baseline of the walkthrough: the same small model as fmnist-deit trained on
 * Fashion-MNIST with a plain recipe (AdamW and the cosine schedule, but no RandAugment, Mixup, CutMix, random
 * erasing, stochastic depth, label smoothing or repeated augmentation) — the "ViT trained without DeiT's
 * recipe" row.
 *
 *   deno task train --config fmnist-vit-plain
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "small ViT on Fashion-MNIST, plain recipe (baseline)",
  config: {
    model: "deit_mini_patch4_28",
    dataset: "fashion-mnist",
    train_split: "train",
    val_split: "test",
    epochs: 25,
    warmup_epochs: 3,
    batch_size: 256,
    lr: 2e-3,
    min_lr: 1e-5,
    aa: "",
    mixup: 0,
    cutmix: 0,
    reprob: 0,
    drop_path: 0,
    smoothing: 0,
    repeated_aug: false,
  },
} satisfies ConfigFile;
