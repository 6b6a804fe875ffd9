/**
 * Claims (b)–(d) of results/claims.md: the students of configs/grids/claims.ts's teachers, each in 3 seeds, at
 * the claims scale (configs/fmnist-claims.ts: deit_micro_patch7_28, the fixed 10k subset, the DeiT recipe,
 * 100 epochs — the same as the undistilled `claims/deit-sN`).
 *
 * (b) hard vs soft distillation (teacher only, class token; paper Table 3 rows 2–3): `hard-sN` vs `soft-sN`.
 * (c) the distillation token: `token-sN` (DeiT⚗, labels + hard teacher through the distillation token; its
 *     class, distillation and joint heads are all evaluated) vs `hard-sN` (the same teacher through the class
 *     token) and `claims/deit-sN` (no teacher).
 * (d) a convnet teacher vs a transformer teacher of the same accuracy: `token-sN` (RegNetY-200MF) vs
 *     `token-deit-sN` (deit_micro_patch7_28). The teachers are accuracy-matched: `checkpoint-matched` in each
 *     teacher's folder is written by `deno task match-teachers` once both are done (the stronger teacher's
 *     snapshot whose test accuracy is nearest the weaker's final accuracy; the weaker's final weights) — the
 *     students wait for both teachers and fail at once, naming the file, until it exists.
 *
 * The three arms of a seed with the convnet teacher see the same batches, so its logits are computed by the
 * first and read back by the others (`teacher_cache`, lib/distill/teacher_cache.ts; the numbers do not change).
 *
 *   deno task sweep --grid headline,claims,claims-distill     # the longest run first
 */
import { type Grid, type GridRow, SMOKE_RUN } from "../../lib/sweep/grid.ts";

const SEEDS = [0, 1, 2];
const TEACHERS = ["claims/teacher-regnet", "claims/teacher-deit"];
const regnet = {
  teacher: "regnety_002",
  teacher_checkpoint: "{runs}/claims/teacher-regnet/checkpoint-matched.safetensors",
  teacher_cache: true,
};
const deit = {
  teacher: "deit_micro_patch7_28",
  teacher_checkpoint: "{runs}/claims/teacher-deit/checkpoint-matched.safetensors",
};

const arms: { name: string; label: string; overrides: GridRow["overrides"]; paper: number }[] = [
  {
    name: "soft",
    label: "usual distillation (soft, τ 3), class token, convnet teacher",
    overrides: { distillation: "soft-cls", distillation_tau: 3, ...regnet },
    paper: 81.8,
  },
  {
    name: "token-deit",
    label: "DeiT⚗ (distillation token), transformer teacher",
    overrides: { model: "deit_micro_distilled_patch7_28", distillation: "token-both", ...deit },
    paper: 81.9,
  },
  {
    name: "hard",
    label: "hard distillation, class token, convnet teacher",
    overrides: { distillation: "hard-cls", ...regnet },
    paper: 83.0,
  },
  {
    name: "token",
    label: "DeiT⚗ (distillation token), convnet teacher",
    overrides: { model: "deit_micro_distilled_patch7_28", distillation: "token-both", ...regnet },
    paper: 83.4,
  },
];

export default {
  description:
    "claims (b)–(d): soft, hard and distillation-token students of accuracy-matched teachers, 3 seeds",
  base: "fmnist-claims",
  smoke: SMOKE_RUN,
  // Seed by seed, and within a seed the convnet teacher's first student (soft) before the two that read its
  // cached logits (hard, token), with the transformer-taught student between: run two at a time, the readers
  // start after or behind the writer, and the cache (ignored by git) need only last for one seed's runs.
  rows: SEEDS.flatMap((seed) =>
    arms.map(({ name, label, overrides, paper }): GridRow => ({
      name: `${name}-s${seed}`,
      label: `${label} (seed ${seed})`,
      overrides: { ...overrides, seed },
      needs: TEACHERS,
      paper,
      ...(seed > 0 ? { smoke: false } : {}),
    }))
  ),
} satisfies Grid;
