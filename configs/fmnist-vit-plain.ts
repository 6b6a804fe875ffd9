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
import type { ConfigFile, TrainConfig } from "../lib/train/config.ts";
import { PLAIN } from "../lib/train/recipes.ts";
import deit from "./fmnist-deit.ts";

/** What the twin changes in fmnist-deit (also the headline grid's `fmnist-vit-plain` row). */
export const PLAIN_TWIN: Readonly<Partial<TrainConfig>> = Object.freeze({
  ...PLAIN,
  // Training-set accuracy (5,000 images, eval transform) beside the test accuracy: does the plain recipe overfit?
  train_eval_limit: 5000,
});

export default {
  description: "small ViT on Fashion-MNIST, plain recipe (baseline)",
  config: { ...deit.config, ...PLAIN_TWIN },
} satisfies ConfigFile;
