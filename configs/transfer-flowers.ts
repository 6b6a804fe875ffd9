/**
 * transfer-flowers — fine-tune an ImageNet DeiT-B on Oxford Flowers-102 (train + val = the paper's 2,040 images),
 * images at 224. paper.md gives no Flowers-specific hyper-parameters; the CIFAR/Cars ones (SGD, lr 0.01, weight
 * decay 1e-4) are used with a batch that fits the small set.
 *
 *   deno task train --config transfer-flowers --data_dir DIR --finetune results/runs/deit-base
 *
 * Expected: 98.4% top-1 (paper, Table 7, DeiT-B).
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { TRANSFER_SGD } from "./recipes/transfer.ts";

export default {
  description: "DeiT-B fine-tuned on Flowers-102 (paper: 98.4)",
  config: {
    ...TRANSFER_SGD,
    dataset: "flowers102",
    train_split: "trainval",
    lr: 0.01 * 512 / 256,
    batch_size: 256,
  },
} satisfies ConfigFile;
