/**
 * Slurm job arrays for a sweep: one array job per dependency level (runs without needs first, then the runs
 * that need them, …), one task per run on one GPU, and `submit.sh`, which submits the levels in order, each
 * with `--dependency=afterok:<previous level's job>`. Every task changes to the repository root and runs the
 * caller's training script (lib/sweep/command.ts `trainArgs`) with `--resume` (which starts fresh in a folder
 * without a checkpoint), so a task that is requeued or submitted again continues where it stopped. A task's
 * output goes to `<run>/train.log`; Slurm's own log of the task (errors before training starts) to
 * `<out>/slurm-<job name>-<job>_<task>.out`.
 */
import { REPO_ROOT, repoPath } from "../base/paths.ts";
import { shellQuote as q, trainArgs } from "./command.ts";
import { levels, type RunSpec, writeRunConfig } from "./grid.ts";

export interface SlurmOptions {
  /** Folder of the .sbatch files and submit.sh. */
  outDir: string;
  /** Name of the sweep (the grid's): file and job names. */
  name: string;
  /** The training script each task runs (relative to the repository root, or absolute). */
  trainScript: string;
  /** Repository root the tasks run in (default: this checkout). */
  repo?: string;
  /** CPUs per task (default 8; `bash submit.sh --cpus-per-task=N` overrides it, as any sbatch option). */
  cpusPerTask?: number;
  /** Memory per task (default 64G). */
  mem?: string;
}

export interface SlurmFile {
  /** File name within outDir. */
  file: string;
  content: string;
  /** The runs of this array job, in task order. */
  runs: RunSpec[];
  level: number;
}

export interface SlurmPlan {
  scripts: SlurmFile[];
  /** submit.sh. */
  submit: string;
}

/** The .sbatch files and submit.sh of the runs (pure; see {@link writeSlurm}). */
export function slurmScripts(runs: RunSpec[], opts: SlurmOptions): SlurmPlan {
  if (runs.length === 0) throw new Error("no runs to write Slurm scripts for");
  const repo = opts.repo ?? REPO_ROOT;
  const safe = opts.name.replace(/[^\w.+-]/g, "_");
  const lv = levels(runs);
  const depth = Math.max(...lv.values()) + 1;
  const scripts: SlurmFile[] = [];
  for (let k = 0; k < depth; k++) {
    const mine = runs.filter((r) => lv.get(r.id) === k);
    const file = depth === 1 ? `${safe}.sbatch` : `${safe}.L${k}.sbatch`;
    const job = depth === 1 ? safe : `${safe}.L${k}`;
    // The command as the sweep runs it locally, with the folder taken from the task's array entry.
    const args = trainArgs(opts.trainScript, "RUN_DIR", { resume: true }).map((a) =>
      a.includes("RUN_DIR") ? `"${a.replace("RUN_DIR", "$DIR")}"` : q(a)
    );
    const needs = depth > 1 && k > 0 ? ` (after level ${k - 1} has succeeded: submit.sh chains them)` : "";
    const content = [
      "#!/bin/bash",
      `# Sweep ${opts.name}, level ${k} (levels 0–${depth - 1}): ${mine.length} run(s)${needs}.`,
      "# Written by `deno task sweep --slurm`; regenerate rather than edit. Submit with submit.sh (beside this",
      "# file), which passes its arguments to sbatch (e.g. --partition=gpu --time=48:00:00).",
      `#SBATCH --job-name=${job}`,
      `#SBATCH --array=0-${mine.length - 1}`,
      "#SBATCH --gres=gpu:1",
      // Data loading and augmentation run on the CPU beside the GPU (DeiT: 10 loader processes per GPU).
      `#SBATCH --cpus-per-task=${opts.cpusPerTask ?? 8}`,
      `#SBATCH --mem=${opts.mem ?? "64G"}`,
      // SIGTERM two minutes before the time limit, to the batch shell — which is `deno` itself (exec below):
      // training saves a checkpoint and stops; a requeued or resubmitted task continues from it (--resume).
      "#SBATCH --signal=B:TERM@120",
      "#SBATCH --requeue",
      `#SBATCH --chdir=${q(repo)}`,
      `#SBATCH --output=${q(`${opts.outDir}/slurm-%x-%A_%a.out`)}`,
      "set -euo pipefail",
      "RUNS=(",
      ...mine.map((r) => `  ${q(r.dir)}${r.row.label ? `  # ${r.row.label.replaceAll("\n", " ")}` : ""}`),
      ")",
      'DIR="${RUNS[$SLURM_ARRAY_TASK_ID]}"',
      `cd ${q(repo)}`,
      'export PATH="$PWD/.tools/bin:$PATH"',
      'mkdir -p "$DIR"',
      `echo "=== $(date -Is) slurm \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID} on $(hostname): ` +
      `deno ${trainArgs(opts.trainScript, "$DIR", { resume: true }).join(" ")}" >> "$DIR/train.log"`,
      `exec deno ${args.join(" ")} >> "$DIR/train.log" 2>&1`,
      "",
    ].join("\n");
    scripts.push({ file, content, runs: mine, level: k });
  }
  const submit = [
    "#!/bin/bash",
    `# Submits sweep ${opts.name}: ${runs.length} run(s) in ${depth} array job(s); a level starts when every`,
    "# task of the level before it has succeeded (afterok). Arguments are passed to every sbatch.",
    "set -euo pipefail",
    'cd "$(dirname "$0")"',
    ...scripts.flatMap((s, k) => [
      `j${k}=$(sbatch --parsable${k > 0 ? ` --dependency=afterok:$j${k - 1}` : ""} "$@" ${q(s.file)})`,
      `j${k}=\${j${k}%%;*}`,
      `echo "${s.file}: job $j${k} (${s.runs.length} run(s)${k > 0 ? `, after job $j${k - 1}` : ""})"`,
    ]),
    "",
  ].join("\n");
  return { scripts, submit };
}

/** Write each run's sweep-config.json, the .sbatch files and submit.sh; returns the plan and the paths. */
export async function writeSlurm(
  runs: RunSpec[],
  opts: SlurmOptions,
): Promise<SlurmPlan & { paths: string[] }> {
  const plan = slurmScripts(runs, opts);
  for (const r of runs) await writeRunConfig(r);
  const out = repoPath(opts.outDir);
  await Deno.mkdir(out, { recursive: true });
  const paths: string[] = [];
  for (const s of plan.scripts) {
    await Deno.writeTextFile(`${out}/${s.file}`, s.content);
    paths.push(`${out}/${s.file}`);
  }
  await Deno.writeTextFile(`${out}/submit.sh`, plan.submit, { mode: 0o755 });
  await Deno.chmod(`${out}/submit.sh`, 0o755);
  paths.push(`${out}/submit.sh`);
  return { ...plan, paths };
}
