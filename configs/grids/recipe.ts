/**
 * The ViT baseline and DeiT's training recipe with its ablation (paper Table 8), at the grid scale of
 * configs/fmnist-10k.ts. Notebooks 01 (the `plain` row) and 02 (the rest) read these runs.
 *
 *   deno task sweep --grid recipe                 # results/runs/recipe/<row>
 *
 * `paper` is DeiT-B's ImageNet top-1 at 224 in Table 8 (the "no erasing" and "no stochastic depth" rows of the
 * paper are runs that failed to train: 4.3 and 3.4).
 */
import { type Grid, SMOKE_RUN } from "../../lib/sweep/grid.ts";
import { PLAIN } from "../../lib/train/recipes.ts";

export default {
  description: "ViT plain recipe vs the DeiT recipe and its ablation (Table 8) on Fashion-MNIST-10k",
  base: "fmnist-10k",
  smoke: SMOKE_RUN,
  rows: [
    {
      name: "plain",
      label:
        "ViT, plain recipe (no RandAugment, Mixup, CutMix, erasing, stochastic depth, smoothing, repeated aug.)",
      overrides: { ...PLAIN },
    },
    { name: "deit", label: "DeiT recipe (default)", paper: 81.8 },
    { name: "no-randaug", label: "− RandAugment", overrides: { aa: "" }, paper: 79.6 },
    { name: "no-mixup", label: "− Mixup", overrides: { mixup: 0 }, paper: 78.7 },
    { name: "no-cutmix", label: "− CutMix", overrides: { cutmix: 0 }, paper: 80.0 },
    { name: "no-mixup-cutmix", label: "− Mixup − CutMix", overrides: { mixup: 0, cutmix: 0 }, paper: 75.8 },
    { name: "no-erasing", label: "− random erasing", overrides: { reprob: 0 }, paper: 4.3 },
    { name: "no-drop-path", label: "− stochastic depth", overrides: { drop_path: 0 }, paper: 3.4 },
    {
      name: "no-repeated-aug",
      label: "− repeated augmentation",
      overrides: { repeated_aug: false },
      paper: 76.5,
    },
    {
      name: "sgd",
      label: "SGD (momentum 0.9) instead of AdamW",
      // SGD needs a larger step than AdamW: 0.2 per 512 images (0.05 at batch 128), weight decay 1e-4.
      overrides: { opt: "sgd", lr: 0.2, weight_decay: 1e-4 },
      paper: 74.5,
    },
    {
      name: "ema",
      label: "+ EMA of the weights (evaluated)",
      // DeiT's 0.99996 averages over ~25k of its 375k steps; this schedule has 936, so the same share is ~0.99.
      overrides: { ema: true, ema_decay: 0.99 },
      paper: 81.9,
    },
  ],
} satisfies Grid;
