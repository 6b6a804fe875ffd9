/**
 * `deno task sweep --grid NAME|FILE[,NAME…] [--devices cpu|cpu:N|0,1,…] [--max-parallel N] [--preset full|smoke]
 *   [--root DIR] [--dry-run]`
 * `deno task sweep status --grid …`
 * `deno task sweep --slurm --grid … [--out DIR]`
 *
 * Runs every row of the grids (configs/grids/NAME.ts) as a training run in `<runs root>/<grid>/<row>` on local
 * slots (lib/sweep/runner.ts) with scripts/train.ts, prints the table of their states, or writes Slurm array
 * jobs (lib/sweep/slurm.ts). Done runs are skipped and started ones resume, so the same command continues a
 * sweep.
 */
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { REPO_ROOT } from "../lib/base/paths.ts";
import { shellLine, shellQuote } from "../lib/sweep/command.ts";
import { compactRun } from "../lib/sweep/compact.ts";
import {
  configChanges,
  listGrids,
  planSweep,
  type Preset,
  type RunSpec,
  runsRoot,
} from "../lib/sweep/grid.ts";
import { runSweep } from "../lib/sweep/runner.ts";
import { parseDevices, type Slot } from "../lib/sweep/slots.ts";
import { nvidiaBusIds } from "../lib/accel/gpu_select.ts";
import { writeSlurm } from "../lib/sweep/slurm.ts";
import { runStatus } from "../lib/sweep/status.ts";
import { statusTable } from "../lib/sweep/view.ts";
import { formatTable } from "../lib/base/text_table.ts";
import { fmtSeconds } from "../lib/base/progress.ts";
import { train, TRAIN_SCRIPT } from "./train_command.ts";

const USAGE = `usage: deno task sweep --grid NAME|FILE[,NAME…] [--devices cpu|cpu:N|0,1,…] [--max-parallel N]
                       [--preset full|smoke] [--root DIR] [--dry-run]
       deno task sweep status --grid NAME|FILE[,…] [--preset full|smoke] [--root DIR]
       deno task sweep compact --grid NAME|FILE[,…]   (finished runs: drop optimiser state and checkpoint-best)
       deno task sweep --slurm --grid NAME|FILE[,…] [--out DIR] [--preset …] [--root DIR]
grids: ${(await listGrids()).join(", ") || "none yet (configs/grids/)"}`;

/** A path the user typed (relative to the working folder) as the sweep uses it (relative to the repository). */
function userPath(p: string): string {
  const abs = p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  const norm = abs.replace(/\/\.(?=\/|$)/g, "").replace(/\/+$/, "");
  return norm.startsWith(REPO_ROOT + "/") ? norm.slice(REPO_ROOT.length + 1) : norm;
}

await runMain(async () => {
  const args = [...Deno.args];
  const status = args[0] === "status";
  const compact = args[0] === "compact";
  if (status || compact) args.shift();
  const f = parseFlags(args, {
    string: ["grid", "devices", "max-parallel", "preset", "root", "out"],
    boolean: ["dry-run", "slurm"],
    default: { preset: "full", devices: "cpu" },
  }, USAGE);
  if (!f.grid) throw new UsageError(`--grid is required\n${USAGE}`);
  const preset = f.preset as Preset;
  if (preset !== "full" && preset !== "smoke") {
    throw new UsageError(`--preset must be full or smoke, got '${preset}'`);
  }
  const root = f.root ? userPath(f.root as string) : undefined;
  const gridNames = (f.grid as string).split(",").map((s) => s.trim()).filter((s) => s);
  const runs = await planSweep(gridNames, { preset, root });
  const runsDir = runsRoot(preset, root);

  if (compact) return await compactRuns(runs);
  if (status) return await printStatus(runs, runsDir);
  if (f.slurm) return await writeSlurmJobs(runs, { gridNames, runsDir, out: f.out as string | undefined });

  const maxParallel = f["max-parallel"] !== undefined
    ? intFlag(f["max-parallel"], "max-parallel")
    : undefined;
  const gpus = !/^cpu/.test(String(f.devices).trim());
  const slots = parseDevices(f.devices as string, { maxParallel, busIds: gpus ? await nvidiaBusIds() : [] });
  const slotLine = slots[0].kind === "cpu"
    ? `${slots.length} cpu slot(s), --workers ${slots[0].workers} each`
    : `GPU(s) ${slots.map((s) => s.gpu).join(", ")}`;
  if (f["dry-run"]) return await dryRun(runs, slots, slotLine);
  console.log(`sweep of ${runs.length} runs on ${slotLine}; folders under ${runsDir}`);
  const code = await sweep(runs, slots);
  if (code !== 0) Deno.exit(code);
});

/** `compact`: finished runs drop their optimiser state and checkpoint-best. */
async function compactRuns(runs: RunSpec[]): Promise<void> {
  for (const r of runs) {
    const c = await compactRun(r.dir);
    if (c) {
      console.log(
        `${r.id}: ${(c.bytesBefore / 2 ** 20).toFixed(1)} → ${(c.bytesAfter / 2 ** 20).toFixed(1)} MB`,
      );
    }
  }
}

/** `status`: the table of the runs read from their folders, and the recorded failures. */
async function printStatus(runs: RunSpec[], runsDir: string): Promise<void> {
  const { table, states, left } = await statusTable(runs);
  console.log(table);
  const count = (s: string) => states.filter((x) => x.state === s).length;
  console.log(
    `${runs.length} runs: ${count("done")} done, ${count("partial")} partial, ${count("pending")} pending, ` +
      `${count("failed")} failed (folders under ${runsDir})`,
  );
  const known = left.filter((l): l is number => l !== null).reduce((a, l) => a + l, 0);
  const unknown = left.filter((l) => l === null).length;
  const notEstimated = `${unknown} run(s) like none that has logged an epoch yet ("?")`;
  if (known > 0) {
    const estimate = fmtSeconds(known, "words");
    console.log(
      `left: ~${estimate} of run time (one slot each), estimated from the seconds per epoch logged so far` +
        (unknown ? `; not estimated: ${notEstimated}` : ""),
    );
  } else if (unknown > 0) console.log(`left: not estimated: ${notEstimated}`);
  for (const [i, s] of states.entries()) {
    if (s.failure) console.log(`\n${runs[i].id} failed (exit ${s.failure.code}):\n${s.failure.tail}`);
  }
}

/** `--slurm`: array jobs for the runs not done, in the grid's run folder (or --out). */
async function writeSlurmJobs(
  runs: RunSpec[],
  o: { gridNames: string[]; runsDir: string; out?: string },
): Promise<void> {
  const states = await Promise.all(runs.map((r) => runStatus(r.dir, r.config.epochs)));
  const todo = runs.filter((_, i) => states[i].state !== "done");
  const done = runs.length - todo.length;
  if (todo.length === 0) {
    console.log(`all ${runs.length} runs are done; nothing to submit`);
    return;
  }
  const names = [...new Set(runs.map((r) => r.grid))];
  const outDir = o.out ? userPath(o.out) : (names.length === 1 ? `${o.runsDir}/${names[0]}` : o.runsDir);
  const plan = await writeSlurm(todo, {
    outDir,
    name: o.gridNames.length === 1 ? names[0] : names.join("+"),
    trainScript: TRAIN_SCRIPT,
  });
  for (const s of plan.scripts) {
    console.log(`${outDir}/${s.file}: ${s.runs.length} run(s), level ${s.level}`);
  }
  console.log(
    `${done ? `${done} done run(s) left out; ` : ""}submit with: bash ${
      shellQuote(`${outDir}/submit.sh`)
    } [sbatch options]`,
  );
}

/** `--dry-run`: the runs, their states and the command each would run. */
async function dryRun(runs: RunSpec[], slots: Slot[], slotLine: string): Promise<void> {
  const states = await Promise.all(runs.map((r) => runStatus(r.dir, r.config.epochs)));
  const rows = runs.map((r, i) => [r.id, states[i].state, r.needs.join(", "), r.dir]);
  console.log(formatTable(["run", "state", "needs", "folder"], rows));
  console.log(`\n${slotLine}; commands (run in ${REPO_ROOT}):`);
  for (const [i, r] of runs.entries()) {
    const st = states[i].state;
    const line = st === "done"
      ? "(done: skipped)"
      : shellLine(train(r, slots[0], { resume: st !== "pending" }));
    console.log(`${r.id}: ${line}`);
  }
  for (const [i, r] of runs.entries()) {
    const changed = states[i].state === "pending" ? [] : await configChanges(r);
    if (changed.length) console.log(`NOTE ${r.id} started with another config: ${changed.join(", ")}`);
  }
}

/**
 * Run the sweep until it ends; SIGINT/SIGTERM stop it (the running runs checkpoint and exit), a second one kills
 * them. The exit code: 0 all done, 1 failed or blocked runs, 130 interrupted.
 */
async function sweep(runs: RunSpec[], slots: Slot[]): Promise<number> {
  const stop = new AbortController(), kill = new AbortController();
  const onSignal = () => {
    if (!stop.signal.aborted) {
      console.error("\nstopping: the running runs save a checkpoint and exit (again to kill them now)…");
      stop.abort();
    } else kill.abort();
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, onSignal);
  const res = await runSweep(runs, { slots, command: train, signal: stop.signal, kill: kill.signal });
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, onSignal);
  const count = (o: string) => res.results.filter((r) => r.outcome === o).length;
  console.log(
    `${count("done")} done, ${count("skipped")} already done, ${res.failed.length} failed, ` +
      `${res.blocked.length} blocked, ${count("interrupted")} interrupted`,
  );
  for (const r of res.failed) {
    console.log(`\n${r.id} failed (exit ${r.code}); ${r.dir}/train.log ends:\n${r.tail}`);
  }
  for (const r of res.blocked) console.log(`${r.id} blocked: ${r.reason}`);
  if (res.interrupted) {
    console.log("interrupted: the same command resumes the sweep");
    return 130;
  }
  return res.failed.length || res.blocked.length ? 1 : 0;
}
