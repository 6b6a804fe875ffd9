/**
 * The transfer recipes the configs/transfer-*.ts configs share (paper.md § Transfer: an ImageNet DeiT-B
 * fine-tuned on each dataset). Named recipes of the training itself (PLAIN, LIGHT) are lib/train/recipes.ts.
 * This folder is not a config: `deno task train --config` lists only the files directly in configs/.
 */
import type { TrainConfig } from "../../lib/train/config.ts";

/** The authors' hyper-parameters for CIFAR and Cars: SGD, weight decay 1e-4; scored on the test split. */
export const TRANSFER_SGD: Readonly<Partial<TrainConfig>> = Object.freeze({
  model: "deit_base_patch16_224",
  val_split: "test",
  opt: "sgd",
  weight_decay: 1e-4,
});

/** {@link TRANSFER_SGD} at the authors' batch 768 and lr 0.01, images upsampled to 224 (CIFAR-10/100, Cars). */
export const TRANSFER_SGD_768: Readonly<Partial<TrainConfig>> = Object.freeze({
  ...TRANSFER_SGD,
  img_size: 224,
  lr: 0.01 * 512 / 768, // the authors' lr 0.01 at batch 768, expressed in DeiT's base-per-512 convention
  batch_size: 768,
});

/** The authors' hyper-parameters for iNaturalist: DeiT's AdamW at lr 7.5e-5, 360 epochs, random erasing 0.1. */
export const TRANSFER_INAT: Readonly<Partial<TrainConfig>> = Object.freeze({
  model: "deit_base_patch16_224",
  epochs: 360,
  lr: 7.5e-5,
  reprob: 0.1,
});
