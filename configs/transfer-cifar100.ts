/**
 * transfer-cifar100 — fine-tune an ImageNet DeiT-B on CIFAR-100 with the authors' transfer hyper-parameters (paper.md
 * § Transfer: SGD, lr 0.01, weight decay 1e-4, batch 768), images upsampled to 224. The number of epochs is not
 * given there; 300 (DeiT's default) is used.
 *
 *   deno task train --config transfer-cifar100 --data_dir DIR --finetune results/runs/deit-base
 *
 * Expected: 90.8% top-1 (paper, Table 7, DeiT-B).
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { TRANSFER_SGD_768 } from "./recipes/transfer.ts";

export default {
  description: "DeiT-B fine-tuned on CIFAR-100 (paper: 90.8)",
  config: { ...TRANSFER_SGD_768, dataset: "cifar100" },
} satisfies ConfigFile;
