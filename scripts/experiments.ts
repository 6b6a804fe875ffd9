/**
 * The runs the walkthrough needs, for a preset, made when they are missing: "smoke" trains seconds-long
 * stand-ins of every run (tiny subsets, 2 epochs, under .cache/smoke/runs) so a notebook runs end to end in the
 * test suite; "full" reads the finished runs under results/runs (made by `deno task reproduce` /
 * `deno task sweep`) and trains nothing unless asked. `deno task reproduce` and the notebooks call it.
 */
import { initBackend } from "../lib/accel/backend.ts";
import { presetFromEnv, unfinishedRuns } from "../lib/report/experiments.ts";
import { matchTeachersWhenDone } from "../lib/report/teachers.ts";
import { planSweep, type Preset, runsRoot } from "../lib/sweep/grid.ts";
import { runSweep } from "../lib/sweep/runner.ts";
import { parseDevices } from "../lib/sweep/slots.ts";
import { train } from "./train_command.ts";

export interface Experiments {
  preset: Preset;
  /** Root of the run folders: `<root>/<grid>/<row>`. */
  root: string;
  /** Runs of the grids not finished (full preset): the tables show them as such. */
  missing: string[];
  /** The TensorFlow.js backend this process evaluates on. */
  backend: string;
}

export interface PrepareOptions {
  preset?: Preset;
  root?: string;
  /** Train what is not done in the full preset too. */
  train?: boolean;
  devices?: string;
  quiet?: boolean;
  backend?: string;
}

/**
 * Makes sure the grids' runs exist for the preset. Smoke: trains what is not done (2 runs side by side).
 * Full: trains nothing unless `train` is set (as `deno task reproduce` does); lists unfinished runs.
 */
export async function prepareRuns(grids: string[], opts: PrepareOptions = {}): Promise<Experiments> {
  const backend = (await initBackend(opts.backend ?? "auto")).name;
  const preset = opts.preset ?? presetFromEnv();
  const root = runsRoot(preset, opts.root);
  const runs = await planSweep(grids, { preset, root: opts.root });
  if (preset === "smoke" || opts.train) {
    const lines: string[] = [];
    const res = await runSweep(runs, {
      slots: parseDevices(opts.devices ?? "cpu"),
      command: train,
      tty: false,
      write: (t) => opts.quiet ? lines.push(t) : Deno.stdout.writeSync(new TextEncoder().encode(t)),
    });
    if (res.failed.length || res.blocked.length) {
      const why = [...res.failed, ...res.blocked].map((r) => `${r.id}: ${r.tail ?? r.reason ?? r.outcome}`);
      throw new Error(`runs did not finish:\n${why.join("\n")}`);
    }
  }
  const missing = await unfinishedRuns(runs);
  if (missing.length && !opts.quiet) {
    console.log(
      `${missing.length} run(s) not finished yet (${missing.join(", ")}): their rows show "—". ` +
        `Run: deno task sweep --grid ${grids.join(",")}`,
    );
  }
  return { preset, root, missing, backend };
}

/**
 * The claims grids (results/claims.md) in their order: the teachers and the other claims runs, then — once both
 * teachers are done — the accuracy-matched teacher checkpoints, then the students that need them.
 */
export async function prepareClaimRuns(opts: PrepareOptions = {}): Promise<Experiments> {
  const first = await prepareRuns(["claims"], opts);
  const t = `${first.root}/claims`; // teachers.ts resolves it from the repository root
  if (await matchTeachersWhenDone(`${t}/teacher-regnet`, `${t}/teacher-deit`) && !opts.quiet) {
    console.log("claims: teachers matched (checkpoint-matched.safetensors in each teacher's folder)");
  }
  const second = await prepareRuns(["claims-distill"], opts);
  return { ...second, missing: [...first.missing, ...second.missing] };
}
