/**
 * The full-data headline run, `configs/fmnist-deit.ts` (the training issue's acceptance run): deit_mini_patch4_28
 * on all 60,000 Fashion-MNIST images for 25 epochs with the full DeiT recipe. Notebook 02 shows it beside the
 * grid-scale runs. Hours here (≈ 7–15 min per epoch on 2 cores): it resumes from its checkpoints.
 *
 *   deno task sweep --grid headline               # results/runs/headline/fmnist-deit
 */
import { type Grid, SMOKE_RUN } from "../../lib/sweep/grid.ts";

export default {
  description:
    "fmnist-deit: the full DeiT recipe on all of Fashion-MNIST (the training issue's acceptance run)",
  base: "fmnist-deit",
  smoke: SMOKE_RUN,
  rows: [{ name: "fmnist-deit", label: "deit_mini_patch4_28, 60k images, 25 epochs, full DeiT recipe" }],
} satisfies Grid;
