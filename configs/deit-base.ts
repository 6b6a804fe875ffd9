/**
 * deit-base — DeiT-B on ImageNet-1k, the paper's recipe (lib/train/config.ts defaults).
 *
 *   deno task train --config deit-base --data_dir /data/imagenet
 *
 * Expected: 81.8% top-1 (paper); 53 h on 8 V100 (37 h on 16).
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-B, ImageNet-1k, 300 epochs (paper: 81.8)",
  config: { model: "deit_base_patch16_224", dataset: "imagefolder" },
} satisfies ConfigFile;
