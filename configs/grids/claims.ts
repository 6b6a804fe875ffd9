/**
 * The paper's claims, each as an experiment that could show it at this machine's scale (results/claims.md;
 * configs/fmnist-claims.ts: deit_micro_patch7_28 on a fixed 10k Fashion-MNIST subset for 100 epochs).
 * Rows that another row is compared with by less than 3 points come in 3 seeds (`-s0`, `-s1`, `-s2`).
 *
 * (a) DeiT recipe vs plain, limited data: `deit-2k5-sN` vs `plain-2k5-sN` (deit_mini on 2,500 images for 200
 *     epochs: a regime where a plain recipe fits its training images), `deit-sN` vs `plain-sN` (the small
 *     deit_micro on 10k), and the full-data, 100-epoch pair headline/fmnist-deit vs headline/fmnist-vit-plain.
 * (b)–(d) distillation: the teachers `teacher-regnet` (convnet) and `teacher-deit` (transformer, the student's
 *     own shape) share one light recipe and keep a snapshot every 5 epochs (evaluated then), so that two
 *     teachers within one point of each other can be taken (scripts/match_teachers.ts); the students are
 *     configs/grids/claims-distill.ts; "no distillation" is `deit-sN`.
 * (e) transfer: the 1,297 handwritten digits from scratch vs fine-tuned from the headline model (90.61% on
 *     Fashion-MNIST), the same model, recipe, learning rate and 100 epochs.
 * (f) resolution: each `deit-sN` fine-tuned 10 more epochs at 42 px (position embeddings resampled 4×4 → 6×6)
 *     against the same 10 more epochs at 28 px from the same weights.
 *
 *   deno task sweep --grid headline,claims,claims-distill      # resumes after any interruption
 */
import { type Grid, type GridRow, SMOKE_RUN } from "../../lib/sweep/grid.ts";
import type { TrainConfig } from "../../lib/train/config.ts";
import { LIGHT, PLAIN } from "../../lib/train/recipes.ts";

const SEEDS = [0, 1, 2];

/** One row per seed; the smoke preset keeps seed 0 only. */
const seeded = (make: (seed: number) => GridRow): GridRow[] =>
  SEEDS.map((seed) => ({ ...make(seed), ...(seed > 0 ? { smoke: false } : {}) }));

const digits: Partial<TrainConfig> = {
  model: "deit_mini_patch4_28",
  dataset: "digits",
  train_limit: 0,
  subset_seed: -1,
  epochs: 100,
  warmup_epochs: 5,
  batch_size: 64,
  lr: 4e-3,
  ...LIGHT,
  eval_every: 5,
  train_eval_limit: 2000,
};

const overfit: Partial<TrainConfig> = {
  model: "deit_mini_patch4_28",
  train_limit: 2500,
  epochs: 200,
  warmup_epochs: 10,
  eval_every: 10,
  train_eval_limit: 2500,
};

const extraEpochs: Partial<TrainConfig> = { epochs: 10, warmup_epochs: 0, lr: 4e-4, eval_every: 2 };

export default {
  description:
    "the paper's claims (a)–(f) at a scale that can show them: 10k Fashion-MNIST images, 100 epochs",
  base: "fmnist-claims",
  smoke: SMOKE_RUN,
  rows: [
    {
      name: "teacher-regnet",
      label: "teacher: RegNetY-200MF (convnet), light recipe, 60 epochs",
      overrides: {
        ...LIGHT,
        model: "regnety_002",
        img_size: 28,
        epochs: 60,
        eval_every: 5,
        snapshot_every: 5,
      },
    },
    {
      name: "teacher-deit",
      label: "teacher: deit_micro_patch7_28 (transformer), light recipe",
      overrides: { ...LIGHT, eval_every: 5, snapshot_every: 5 },
    },
    ...seeded((seed) => ({
      name: `deit-s${seed}`,
      label: `DeiT recipe (seed ${seed})`,
      overrides: { seed },
      paper: 81.8,
    })),
    ...seeded((seed) => ({
      name: `plain-s${seed}`,
      label: `plain recipe (seed ${seed})`,
      overrides: { ...PLAIN, seed },
    })),
    // (a) where a plain recipe overfits: a larger ViT (deit_mini_patch4_28, 49 tokens, 0.67 M parameters) on a
    // quarter of the subset (2,500 images) for 200 epochs.
    ...seeded((seed) => ({
      name: `deit-2k5-s${seed}`,
      label: `DeiT recipe, deit_mini, 2,500 images × 200 epochs (seed ${seed})`,
      overrides: { ...overfit, seed },
      paper: 81.8,
    })),
    ...seeded((seed) => ({
      name: `plain-2k5-s${seed}`,
      label: `plain recipe, deit_mini, 2,500 images × 200 epochs (seed ${seed})`,
      overrides: { ...overfit, ...PLAIN, seed },
    })),
    ...seeded((seed) => ({
      name: `res42-s${seed}`,
      label: `deit-s${seed} + 10 epochs at 42 px`,
      overrides: { ...extraEpochs, img_size: 42, finetune: `{runs}/claims/deit-s${seed}`, seed },
      needs: [`deit-s${seed}`],
      paper: 83.1,
    })),
    ...seeded((seed) => ({
      name: `res28-s${seed}`,
      label: `deit-s${seed} + 10 epochs at 28 px (control)`,
      overrides: { ...extraEpochs, finetune: `{runs}/claims/deit-s${seed}`, seed },
      needs: [`deit-s${seed}`],
      paper: 81.8,
    })),
    ...seeded((seed) => ({
      name: `digits-scratch-s${seed}`,
      label: `digits from scratch (seed ${seed})`,
      overrides: { ...digits, seed },
    })),
    ...seeded((seed) => ({
      name: `digits-finetune-s${seed}`,
      label: `digits fine-tuned from headline/fmnist-deit (seed ${seed})`,
      overrides: { ...digits, finetune: "{runs}/headline/fmnist-deit", seed },
      needs: ["headline/fmnist-deit"],
    })),
  ],
} satisfies Grid;
