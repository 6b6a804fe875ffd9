/**
 * deit-base-384 — fine-tune DeiT-B from 224 to 384 (paper: 25 epochs; position embeddings resampled by bicubic
 * interpolation when the 224 checkpoint is loaded). Learning rate, weight decay and minimum as the DeiT
 * repository's fine-tuning command (lr 5e-6, weight decay 1e-8, min lr 5e-6), no warm-up.
 *
 *   deno task train --config deit-base-384 --data_dir /data/imagenet --finetune results/runs/deit-base
 *
 * Expected: 83.1% top-1 (paper, DeiT-B↑384).
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-B fine-tuned at 384 from a 224 run (paper: 83.1)",
  config: {
    model: "deit_base_patch16_384",
    dataset: "imagefolder",
    epochs: 25,
    batch_size: 512,
    lr: 5e-6,
    weight_decay: 1e-8,
    min_lr: 5e-6,
    warmup_epochs: 0,
  },
} satisfies ConfigFile;
