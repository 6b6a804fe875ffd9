/**
 * Slurm job arrays for a sweep: one array job per dependency level (runs without needs first, then the runs
 * that need them, …), one task per run on one GPU, and `submit.sh`, which submits the levels in order, each
 * with `--dependency=afterok:<previous level's job>`. Every task changes to the repository root and runs the
 * caller's training script (lib/sweep/command.ts `trainArgs`) with `--resume` (which starts fresh in a folder
 * without a checkpoint), so a task that is requeued or submitted again continues where it stopped. A task's
 * output goes to `<run>/train.log`; Slurm's own log of the task (errors before training starts) to
 * `<out>/slurm-<job name>-<job>_<task>.out`.
 *
 * Nothing from a grid reaches the scripts unquoted: the sweep's name must be letters, digits and `_ . + -`
 * (it names the files and jobs and stands in comments); paths (the repository, the run folders, the output
 * folder) may hold spaces, quotes, `$`, `#` or anything else printable — they are single-quoted for bash and
 * double-quoted with backslash escapes in `#SBATCH` lines (how sbatch reads them, old versions included) — but
 * not control characters such as a newline, which no `#SBATCH` line can hold; labels go into comments with
 * control characters replaced by spaces. A name or path outside these rules is a {@link GridError}.
 */
import { REPO_ROOT, repoPath } from "../base/paths.ts";
import { shellQuote as q, trainArgs } from "./command.ts";
import { GridError, levels, type RunSpec, writeRunConfig } from "./grid.ts";

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

/** What a sweep's name may be in a Slurm script: it names files and jobs and stands in comment lines. */
export const SLURM_NAME = /^[A-Za-z0-9_.+-]+$/;

/** A GridError unless `name` is a {@link SLURM_NAME}. */
export function checkSlurmName(name: string): void {
  if (!SLURM_NAME.test(name)) {
    throw new GridError(
      `sweep name ${JSON.stringify(name)} cannot go into a Slurm script: use letters, digits and _ . + - ` +
        "(rename the grid file)",
    );
  }
}

/** A GridError for a path with a control character (a newline cannot be quoted in an `#SBATCH` line). */
function checkPath(path: string, what: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) {
    throw new GridError(
      `${what} ${JSON.stringify(path)} holds a control character (a newline?); Slurm scripts cannot name it`,
    );
  }
  return path;
}

/**
 * A value for an `#SBATCH` line, as sbatch's option parser reads it: in double quotes, with `\`, `"` and `#`
 * escaped by a backslash (an unescaped `#` starts a comment there even inside quotes in older Slurm, and older
 * Slurm knows no single quotes).
 */
export function sbatchQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/[\\"#]/g, "\\$&")}"`;
}

/** `s` inside a bash double-quoted string: `\`, `"`, `$` and backquotes escaped. */
function inDoubleQuotes(s: string): string {
  return s.replace(/[\\"$`]/g, "\\$&");
}

/** A label for a comment line: control characters (a newline would end the comment) become spaces. */
function commentText(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, " ");
}

/** The .sbatch files and submit.sh of the runs (pure; see {@link writeSlurm}). */
export function slurmScripts(runs: RunSpec[], opts: SlurmOptions): SlurmPlan {
  if (runs.length === 0) throw new Error("no runs to write Slurm scripts for");
  checkSlurmName(opts.name);
  const repo = checkPath(opts.repo ?? REPO_ROOT, "the repository path");
  checkPath(opts.outDir, "the output folder");
  checkPath(opts.trainScript, "the training script");
  for (const r of runs) checkPath(r.dir, `run ${r.id}'s folder`);
  const safe = opts.name;
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
    // The same command for the log line, inside a double-quoted echo: "$DIR" expands, the rest is literal.
    const shown = trainArgs(opts.trainScript, "RUN_DIR", { resume: true }).map((a) =>
      a.split("RUN_DIR").map(inDoubleQuotes).join("$DIR")
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
      `#SBATCH --chdir=${sbatchQuote(repo)}`,
      // %x, %A, %a are sbatch's file-name patterns; a % of the folder's own is written %%.
      `#SBATCH --output=${sbatchQuote(`${opts.outDir.replaceAll("%", "%%")}/slurm-%x-%A_%a.out`)}`,
      "set -euo pipefail",
      "RUNS=(",
      ...mine.map((r) => `  ${q(r.dir)}${r.row.label ? `  # ${commentText(r.row.label)}` : ""}`),
      ")",
      'DIR="${RUNS[$SLURM_ARRAY_TASK_ID]}"',
      `cd ${q(repo)}`,
      'export PATH="$PWD/.tools/bin:$PATH"',
      'mkdir -p "$DIR"',
      `echo "=== $(date -Is) slurm \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID} on $(hostname): ` +
      `deno ${shown.join(" ")}" >> "$DIR/train.log"`,
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
