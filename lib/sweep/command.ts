/**
 * What a sweep starts for a run: a process (command, arguments, environment) built by the caller's
 * {@link CommandBuilder}. The library knows the training command line's contract (`--config`, `--out`,
 * `--resume`, `--workers`), not where the training script is: the caller names it.
 */
import { gpuEnv } from "../accel/gpu_select.ts";
import type { RunSpec } from "./grid.ts";
import type { Slot } from "./slots.ts";

/** A process to start for a run: the train command, or a test's fake job. */
export interface JobCommand {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}

export type CommandBuilder = (run: RunSpec, slot: Slot, ctx: { resume: boolean }) => JobCommand;

/**
 * The `deno` arguments that train run folder `dir`: `run -A <script> --config <dir>/sweep-config.json --out <dir>
 * [--resume] [--workers N]` (`script` relative to the repository root, where runs start, or absolute).
 */
export function trainArgs(
  script: string,
  dir: string,
  opts: { resume: boolean; workers?: number },
): string[] {
  return [
    "run",
    "-A",
    script,
    "--config",
    `${dir}/sweep-config.json`,
    "--out",
    dir,
    ...(opts.resume ? ["--resume"] : []),
    ...(opts.workers !== undefined ? ["--workers", String(opts.workers)] : []),
  ];
}

/**
 * This Deno running the training script `script` on the slot: GPU slots see their GPU alone (both GPU
 * backends); CPU slots get `--workers` and keep their BLAS to their share of the cores.
 */
export function trainCommand(script: string): CommandBuilder {
  return (run, slot, { resume }) => ({
    cmd: Deno.execPath(),
    args: trainArgs(script, run.dir, { resume, workers: slot.kind === "cpu" ? slot.workers : undefined }),
    env: slot.kind === "gpu" ? gpuEnv(slot.gpu!, slot.busId) : { DEIT_BLAS_THREADS: String(slot.workers) },
  });
}

/** A shell-quoted command line, as printed by --dry-run. */
export function shellLine(c: JobCommand, cmdName = "deno"): string {
  const env = Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)} `).join("");
  return env + [cmdName, ...c.args].map(shellQuote).join(" ");
}

/** Single-quote for a POSIX shell when needed. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
