/**
 * deit-base-distilled — DeiT-B⚗: the distillation token trained with hard distillation from a RegNetY-16GF
 * teacher (the release's regnety_160-a5fe301d.pth), class + distillation heads at inference (Table 3's default).
 *
 *   deno task train --config deit-base-distilled --data_dir /data/imagenet \
 *     --teacher_checkpoint regnety_160-a5fe301d.pth
 *
 * Expected: 83.4% top-1 (paper, Table 3).
 */
import type { ConfigFile } from "../lib/train/config.ts";

export default {
  description: "DeiT-B⚗ with a RegNetY-16GF teacher, ImageNet-1k (paper: 83.4)",
  config: {
    model: "deit_base_distilled_patch16_224",
    dataset: "imagefolder",
    distillation: "token-both",
    teacher: "regnety_160",
    teacher_checkpoint: "regnety_160-a5fe301d.pth",
  },
} satisfies ConfigFile;
