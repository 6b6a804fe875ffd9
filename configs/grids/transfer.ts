/**
 * Transfer and resolution (paper § 5.3 and the ↑384 fine-tuning), at the grid scale of configs/fmnist-10k.ts.
 * Notebook 04 reads these runs.
 *
 * - Data efficiency: the handwritten digits of Debian's python3-sklearn (1,297 train / 500 test 8×8 images,
 *   resized to 28) learnt from scratch, against fine-tuning the Fashion-MNIST model of recipe/deit.
 * - Resolution: recipe/deit (trained at 28) fine-tuned at 42 px for 3 epochs with its position embeddings
 *   interpolated (4×4 → 6×6 grid), against training at 42 px from scratch with recipe/deit's schedule.
 *
 *   deno task sweep --grid recipe,transfer
 */
import { type Grid, SMOKE_RUN } from "../../lib/sweep/grid.ts";

// lr is per 512 images (scaled by batch/512): 1.6e-2 gives the digits runs the step size the Fashion-MNIST
// grid takes (2e-3 at batch 64; 1e-3 at its batch 128). 1,297 images are 20 steps an epoch, so 100 epochs
// are 2,000 steps (~10 min on one core). Two earlier versions were undertrained, not findings: the grid's
// 4e-3 per 512 (5e-4 at batch 64) for 30 epochs left the loss at 2.27 (16.6% from scratch); 1.6e-2 for 30
// epochs (600 steps) at 2.30 (12.6% from scratch, 20.0% fine-tuned).
const digits = {
  dataset: "digits",
  train_limit: 0,
  epochs: 100,
  warmup_epochs: 5,
  batch_size: 64,
  lr: 1.6e-2,
} as const;

export default {
  description:
    "digits from scratch vs fine-tuned from Fashion-MNIST; 28 → 42 px fine-tuning vs training at 42",
  base: "fmnist-10k",
  smoke: SMOKE_RUN,
  rows: [
    { name: "digits-scratch", label: "digits, from scratch", overrides: { ...digits } },
    {
      name: "digits-finetune",
      label: "digits, fine-tuned from Fashion-MNIST (recipe/deit)",
      // A tenth of the scratch learning rate, as fine-tuning recipes do.
      overrides: { ...digits, lr: 1.6e-3, finetune: "{runs}/recipe/deit" },
      needs: ["recipe/deit"],
    },
    {
      name: "res42-finetune",
      label: "28 → 42 px: recipe/deit fine-tuned 3 epochs, position embeddings interpolated",
      overrides: {
        img_size: 42,
        epochs: 3,
        warmup_epochs: 0,
        lr: 4e-4,
        finetune: "{runs}/recipe/deit",
      },
      needs: ["recipe/deit"],
    },
    {
      name: "res42-scratch",
      label: "42 px from scratch (recipe/deit's schedule)",
      overrides: { img_size: 42 },
    },
  ],
} satisfies Grid;
