/**
 * The main job end to end in its smoke preset: every grid's runs (seconds-long stand-ins, through the sweep
 * runner and scripts/train.ts), every result table and figure, and the five notebooks executed headless under
 * the Deno kernel — as a user runs them, minus the hours.
 */
import { assert, assertEquals } from "@std/assert";
import { REPO_ROOT } from "../lib/base/paths.ts";

const ROOT = `${REPO_ROOT}/`;
const OUT = `${ROOT}.cache/smoke`;

Deno.test({
  name: "reproduce --preset smoke: runs, tables, figures and the five notebooks headless",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/reproduce.ts", "--preset", "smoke"],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout), err = new TextDecoder().decode(r.stderr);
    assert(r.success, `reproduce --preset smoke failed:\n${out.slice(-3000)}\n${err.slice(-3000)}`);
    for (
      const t of [
        "models",
        "eval",
        "ablation",
        "distillation",
        "teachers",
        "transfer",
        "resolution",
        "throughput",
      ]
    ) {
      const md = await Deno.readTextFile(`${OUT}/results/${t}.md`);
      assert(md.includes("|"), `${t}.md has no table`);
    }
    // Every run of the grids is done, so every row of the run-backed tables has a number.
    const ablation = JSON.parse(await Deno.readTextFile(`${OUT}/results/ablation.json`));
    assertEquals(ablation.rows.length, 11);
    for (const row of ablation.rows) assert(typeof row.ours === "number", `no accuracy for ${row.row}`);
    const distill = JSON.parse(await Deno.readTextFile(`${OUT}/results/distillation.json`));
    for (const row of distill.rows) assert(typeof row.ours === "number", `no accuracy for ${row.row}`);
    for (
      const nb of ["01_vit_baseline", "02_deit_training", "03_distillation", "04_transfer", "05_throughput"]
    ) {
      const book = JSON.parse(await Deno.readTextFile(`${OUT}/notebooks/${nb}.ipynb`));
      const outputs = book.cells.flatMap((c: { outputs?: { output_type: string; data?: object }[] }) =>
        c.outputs ?? []
      );
      assert(!outputs.some((o: { output_type: string }) => o.output_type === "error"), `${nb} has an error`);
      assert(
        outputs.some((o: { data?: object }) =>
          o.data && ("image/svg+xml" in o.data || "image/png" in o.data)
        ),
        `${nb} shows no figure`,
      );
    }
  },
});
