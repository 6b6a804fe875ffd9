/**
 * fmnist-claims — the scale at which the paper's claims are tested here (results/claims.md, grid
 * configs/grids/claims.ts): deit_micro_patch7_28 (7×7 patches of 28×28 → 16 tokens, width 64, depth 6, 2 heads,
 * 0.31 M parameters) on a fixed 10,000-image subset of Fashion-MNIST (the limited-data regime: 1/6 of the
 * training set), trained for 100 epochs — long enough that a plain recipe fits its training images (the log
 * carries `train_acc1`, measured on 5,000 of them through the eval transform, beside the test accuracy).
 *
 * The subset is the same for every seed (`subset_seed: 0`): seeds change the initialisation, the augmentation
 * and the order of the batches, so paired rows (recipe vs plain, one teacher vs another) see the same images.
 * Each run is ~15–25 min on the 2-core development machine (2 runs side by side with `deno task sweep`).
 *
 *   deno task train --config fmnist-claims                  # one run; configs/grids/claims.ts varies it
 *
 * The schedule is DeiT's (AdamW, cosine with warm-up, every regulariser of the recipe) with two departures
 * kept from the 12-epoch grids: lr 4e-3 per 512 images (1e-3 at batch 128, the step size of the headline run)
 * and the cosine stepped per optimiser step. On an 8-GPU node the same config scales by changing `model`,
 * `dataset`, `train_limit`, `epochs` and `batch_size`.
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description:
    "claims scale: deit_micro_patch7_28 on a fixed 10k Fashion-MNIST subset, DeiT recipe, 100 epochs",
  config: {
    model: "deit_micro_patch7_28",
    dataset: "fashion-mnist",
    train_split: "train",
    val_split: "test",
    train_limit: 10000,
    subset_seed: 0,
    epochs: 100,
    warmup_epochs: 5,
    sched_per_step: true,
    batch_size: 128,
    lr: 4e-3,
    min_lr: 1e-5,
    // Test (all 10,000) and training-set (5,000 of the subset) accuracy every 4 epochs and after the last.
    eval_every: 4,
    train_eval_limit: 5000,
  },
} satisfies ConfigFile;
