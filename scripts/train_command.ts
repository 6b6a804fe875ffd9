/**
 * How the sweeps of `deno task sweep` and `deno task reproduce` start a training run: this Deno running
 * scripts/train.ts (lib/sweep/command.ts). The path is relative to the repository root, where runs start, so
 * that run logs and printed commands hold no machine's path.
 */
import { type CommandBuilder, trainCommand } from "../lib/sweep/command.ts";

export const TRAIN_SCRIPT = "scripts/train.ts";

export const train: CommandBuilder = trainCommand(TRAIN_SCRIPT);
