/**
 * deit-tiny — DeiT-Ti on ImageNet-1k with the paper's recipe (Table 9; every value is lib/train/config.ts's
 * default): 300 epochs, batch 1024, AdamW lr 5e-4 × 1024/512, cosine, 5 warm-up epochs, RandAugment, Mixup,
 * CutMix, erasing, stochastic depth 0.1, repeated augmentation.
 *
 *   deno task train --config deit-tiny --data_dir /data/imagenet      # train/ and val/ ImageFolders
 *
 * Expected: 72.2% top-1 (paper), on 8 GPUs in about a day; not runnable on the 2-core development machine.
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-Ti, ImageNet-1k, 300 epochs (paper: 72.2)",
  config: { model: "deit_tiny_patch16_224", dataset: "imagefolder" },
} satisfies ConfigFile;
