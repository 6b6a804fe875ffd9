/**
 * The runs the walkthrough needs, for a preset: "smoke" trains seconds-long stand-ins of every run (tiny
 * subsets, 2 epochs, under .cache/smoke/runs) so a notebook runs end to end in the test suite; "full" reads
 * the finished runs under results/runs (made by `deno task reproduce` / `deno task sweep`) and trains nothing.
 */
import { initBackend } from "../accel/backend.ts";
import { planSweep, type Preset, runsRoot } from "../sweep/grid.ts";
import { matchTeachersWhenDone } from "./teachers.ts";
import { parseDevices, runSweep } from "../sweep/runner.ts";
import { runStatus } from "../sweep/status.ts";

/** The preset of this process: `DEIT_PRESET` (smoke|full), default full. */
export function presetFromEnv(): Preset {
  const p = Deno.env.get("DEIT_PRESET") ?? "full";
  if (p !== "smoke" && p !== "full") throw new Error(`DEIT_PRESET must be smoke or full, got '${p}'`);
  return p;
}

export interface Experiments {
  preset: Preset;
  /** Root of the run folders: `<root>/<grid>/<row>`. */
  root: string;
  /** Runs of the grids not finished (full preset): the tables show them as such. */
  missing: string[];
  /** The TensorFlow.js backend this process evaluates on. */
  backend: string;
}

/**
 * Makes sure the grids' runs exist for the preset. Smoke: trains what is not done (2 runs side by side).
 * Full: trains nothing unless `train` is set (as `deno task reproduce` does); lists unfinished runs.
 */
export async function prepareRuns(
  grids: string[],
  opts: {
    preset?: Preset;
    root?: string;
    train?: boolean;
    devices?: string;
    quiet?: boolean;
    backend?: string;
  } = {},
): Promise<Experiments> {
  const backend = (await initBackend(opts.backend ?? "auto")).name;
  const preset = opts.preset ?? presetFromEnv();
  const root = runsRoot(preset, opts.root);
  const runs = await planSweep(grids, { preset, root: opts.root });
  if (preset === "smoke" || opts.train) {
    const lines: string[] = [];
    const res = await runSweep(runs, {
      slots: parseDevices(opts.devices ?? "cpu"),
      tty: false,
      write: (t) => opts.quiet ? lines.push(t) : Deno.stdout.writeSync(new TextEncoder().encode(t)),
    });
    if (res.failed.length || res.blocked.length) {
      const why = [...res.failed, ...res.blocked].map((r) => `${r.id}: ${r.tail ?? r.reason ?? r.outcome}`);
      throw new Error(`runs did not finish:\n${why.join("\n")}`);
    }
  }
  const missing: string[] = [];
  for (const r of runs) if ((await runStatus(r.dir, r.config.epochs)).state !== "done") missing.push(r.id);
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
export async function prepareClaimRuns(opts: Parameters<typeof prepareRuns>[1] = {}): Promise<Experiments> {
  const first = await prepareRuns(["claims"], opts);
  const t = `${first.root}/claims`; // teachers.ts resolves it from the repository root
  if (await matchTeachersWhenDone(`${t}/teacher-regnet`, `${t}/teacher-deit`) && !opts.quiet) {
    console.log("claims: teachers matched (checkpoint-matched.safetensors in each teacher's folder)");
  }
  const second = await prepareRuns(["claims-distill"], opts);
  return { ...second, missing: [...first.missing, ...second.missing] };
}
