/**
 * transfer-cifar10 — fine-tune an ImageNet DeiT-B on CIFAR-10 with the authors' transfer hyper-parameters (paper.md
 * § Transfer: SGD, lr 0.01, weight decay 1e-4, batch 768), images upsampled to 224. The number of epochs is not
 * given there; 300 (DeiT's default) is used.
 *
 *   deno task train --config transfer-cifar10 --data_dir DIR --finetune results/runs/deit-base
 *
 * Expected: 99.1% top-1 (paper, Table 7, DeiT-B).
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-B fine-tuned on CIFAR-10 (paper: 99.1)",
  config: {
    model: "deit_base_patch16_224",
    dataset: "cifar10",
    val_split: "test",
    img_size: 224,
    opt: "sgd",
    lr: 0.01 * 512 / 768, // the authors' lr 0.01 at batch 768, expressed in DeiT's base-per-512 convention
    weight_decay: 1e-4,
    batch_size: 768,
  },
} satisfies ConfigFile;
