/** A 2-row grid of seconds-long runs for tests/sweep_test.ts (the full preset is already tiny). */
import type { Grid } from "../../lib/sweep/grid.ts";

export default {
  description: "two tiny Fashion-MNIST runs (test fixture)",
  base: "fmnist-deit",
  overrides: {
    train_limit: 64,
    eval_limit: 64,
    epochs: 1,
    warmup_epochs: 1,
    batch_size: 32,
    loader_workers: 0,
  },
  rows: [
    { name: "a", label: "baseline" },
    { name: "b", label: "drop path 0", overrides: { drop_path: 0 }, paper: 72.2 },
  ],
} satisfies Grid;
