/**
 * transfer-inat18 — fine-tune an ImageNet DeiT-B on iNaturalist 2018 with the authors' hyper-parameters
 * (paper.md § Transfer: AdamW, lr 7.5e-5, 360 epochs, random erasing 0.1), category level "name".
 *
 *   deno task train --config transfer-inat18 --data_dir DIR --finetune results/runs/deit-base
 *
 * Expected: 73.2% top-1 (paper, Table 7, DeiT-B).
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { TRANSFER_INAT } from "./recipes/transfer.ts";

export default {
  description: "DeiT-B fine-tuned on iNaturalist 2018 (paper: 73.2)",
  config: { ...TRANSFER_INAT, dataset: "inat2018" },
} satisfies ConfigFile;
