/**
 * Which runs the walkthrough reads, for a preset: "smoke" reads seconds-long stand-ins of every run (tiny
 * subsets, 2 epochs, under .cache/smoke/runs), "full" the runs under results/runs. Training them is the
 * scripts' (scripts/experiments.ts, `deno task reproduce`, `deno task sweep`); the report only reads them.
 */
import type { Preset, RunSpec } from "../sweep/grid.ts";
import { runStatus } from "../sweep/status.ts";

/** The preset of this process: `DEIT_PRESET` (smoke|full), default full. */
export function presetFromEnv(): Preset {
  const p = Deno.env.get("DEIT_PRESET") ?? "full";
  if (p !== "smoke" && p !== "full") throw new Error(`DEIT_PRESET must be smoke or full, got '${p}'`);
  return p;
}

/** The ids of the runs not finished (their rows in the tables show "—"). */
export async function unfinishedRuns(runs: RunSpec[]): Promise<string[]> {
  const missing: string[] = [];
  for (const r of runs) if ((await runStatus(r.dir, r.config.epochs)).state !== "done") missing.push(r.id);
  return missing;
}
