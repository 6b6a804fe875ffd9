/**
 * `deno task match-teachers [--root results/runs]`: accuracy-matched teachers for claim (d) (lib/report/teachers.ts):
 * writes `checkpoint-matched.safetensors` in `<root>/claims/teacher-regnet` and `<root>/claims/teacher-deit`.
 */
import { parseFlags, runMain } from "../lib/base/cli.ts";
import { matchTeachers } from "../lib/report/teachers.ts";

await runMain(async () => {
  const a = parseFlags(
    Deno.args,
    { string: ["root"], default: { root: "results/runs" } },
    "usage: deno task match-teachers [--root DIR]",
  );
  const root = String(a.root);
  const c = await matchTeachers(`${root}/claims/teacher-regnet`, `${root}/claims/teacher-deit`);
  for (const t of c.teachers) {
    console.log(
      `${t.dir}: snapshot after ${t.epoch} epochs, ${t.acc1.toFixed(2)}% (final ${t.final_acc1.toFixed(2)}%)`,
    );
  }
  console.log(
    `gap ${c.gap.toFixed(2)} points${c.gap > 1 ? " — MORE than 1 point: the teachers are not matched" : ""}`,
  );
});
