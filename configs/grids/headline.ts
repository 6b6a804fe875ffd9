/**
 * The full-data headline runs, `configs/fmnist-deit.ts` (the training issue's acceptance run): deit_mini_patch4_28
 * on all 60,000 Fashion-MNIST images with the full DeiT recipe, for 100 epochs (`fmnist-deit`) and the same for
 * 25 (`fmnist-deit-25ep`, the first try, which ended below the 90% bar). Notebook 02 shows them beside the
 * grid-scale runs. `fmnist-vit-plain` is its twin with the plain recipe (configs/fmnist-vit-plain.ts), claim (a)
 * of results/claims.md. Hours here (2–3 min an epoch on 2 cores; fmnist-deit took 3.97 h): they resume from their
 * checkpoints.
 *
 *   deno task sweep --grid headline               # results/runs/headline/{fmnist-deit-25ep,fmnist-deit}
 */
import { type Grid, SMOKE_RUN } from "../../lib/sweep/grid.ts";
import { PLAIN_TWIN } from "../fmnist-vit-plain.ts";

export default {
  description:
    "fmnist-deit: the full DeiT recipe on all of Fashion-MNIST (the training issue's acceptance run)",
  base: "fmnist-deit",
  smoke: SMOKE_RUN,
  rows: [
    {
      name: "fmnist-deit-25ep",
      label: "deit_mini_patch4_28, 60k images, 25 epochs, full DeiT recipe",
      overrides: { epochs: 25 },
    },
    { name: "fmnist-deit", label: "deit_mini_patch4_28, 60k images, 100 epochs, full DeiT recipe" },
    {
      name: "fmnist-vit-plain",
      label: "deit_mini_patch4_28, 60k images, 100 epochs, plain recipe (the headline's twin)",
      overrides: { ...PLAIN_TWIN },
    },
  ],
} satisfies Grid;
