/**
 * deit-small — DeiT-S on ImageNet-1k, the paper's recipe (lib/train/config.ts defaults).
 *
 *   deno task train --config deit-small --data_dir /data/imagenet
 *
 * Expected: 79.8% top-1 (paper).
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-S, ImageNet-1k, 300 epochs (paper: 79.8)",
  config: { model: "deit_small_patch16_224", dataset: "imagefolder" },
} satisfies ConfigFile;
