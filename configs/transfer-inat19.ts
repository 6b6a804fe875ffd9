/**
 * transfer-inat19 — fine-tune an ImageNet DeiT-B on iNaturalist 2019 with the authors' hyper-parameters
 * (paper.md § Transfer: AdamW, lr 7.5e-5, 360 epochs, random erasing 0.1), category level "name".
 *
 *   deno task train --config transfer-inat19 --data_dir DIR --finetune results/runs/deit-base
 *
 * Expected: 77.7% top-1 (paper, Table 7, DeiT-B).
 */
import type { ConfigFile } from "../lib/train/config.ts";
import { TRANSFER_INAT } from "./recipes/transfer.ts";

export default {
  description: "DeiT-B fine-tuned on iNaturalist 2019 (paper: 77.7)",
  config: { ...TRANSFER_INAT, dataset: "inat2019" },
} satisfies ConfigFile;
