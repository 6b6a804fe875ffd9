/**
 * `deno task bench:peer`: this project's DeiT against the PyTorch peer (bench/peer_torch.py, Debian's
 * python3-torch) on the same machine, one after the other (never at once: they share the cores), and the
 * ratios. Writes results/bench_peer.{md,csv,json} (lib/report/result_table.ts).
 *
 *   deno task bench:peer [--runs-infer 10] [--runs-train 3] [--only NAME]
 */
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { cpuOpenblasCore } from "../lib/accel/blas.ts";
import { envVar, machineLine } from "../lib/base/machine.ts";
import { fromFileUrl, repoPath } from "../lib/base/paths.ts";
import { type Cell, type ResultTable, tableText, writeTable } from "../lib/report/result_table.ts";

const USAGE = "usage: deno task bench:peer [--runs-infer 10] [--runs-train 3] [--only MODEL]";
/** Debian's interpreter, which sees python3-torch (a pyenv python on PATH would not). */
const PYTHON = "/usr/bin/python3";
const CASES = [
  { model: "deit_tiny_patch16_224", mode: "infer", batch: 32 },
  { model: "deit_tiny_patch16_224", mode: "train", batch: 32 },
  { model: "deit_mini_distilled_patch4_28", mode: "train", batch: 64 },
] as const;

async function runJson(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Record<string, number | string>> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(text);
}

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["runs-infer", "runs-train", "only"],
    default: { "runs-infer": "10", "runs-train": "3" },
  }, USAGE);
  const probe = await new Deno.Command(PYTHON, { args: ["-c", "import torch"], stderr: "null" }).output()
    .catch(() => ({ success: false }));
  if (!probe.success) {
    throw new UsageError(
      `the PyTorch peer needs Debian's python3-torch: apt-get install python3-torch libopenblas0-pthread`,
    );
  }
  // The peer's OpenBLAS gets the kernels ours runs (lib/accel/blas.ts sets them from the CPU's flags; an OpenBLAS
  // older than the CPU would otherwise fall back to generic ones there too).
  const core = envVar("OPENBLAS_CORETYPE") ?? cpuOpenblasCore();
  const peerEnv: Record<string, string> = core ? { OPENBLAS_CORETYPE: core } : {};
  const rows: Record<string, Cell>[] = [];
  for (const c of CASES.filter((c) => !a.only || c.model === a.only)) {
    const runs = String(
      c.mode === "infer" ? intFlag(a["runs-infer"], "runs-infer") : intFlag(a["runs-train"], "runs-train"),
    );
    const common = [
      "--model",
      c.model,
      "--mode",
      c.mode,
      "--batch-size",
      String(c.batch),
      "--runs",
      runs,
      "--json",
    ];
    console.error(`${c.model} ${c.mode} batch ${c.batch}: ours…`);
    const ours = await runJson(Deno.execPath(), [
      "run",
      "-A",
      fromFileUrl(new URL("./bench.ts", import.meta.url)),
      ...common,
    ]);
    console.error(`${c.model} ${c.mode} batch ${c.batch}: PyTorch…`);
    const peer = await runJson(
      PYTHON,
      [fromFileUrl(new URL("./peer_torch.py", import.meta.url)), ...common],
      peerEnv,
    );
    rows.push({
      ...c,
      runs: Number(runs),
      ours_images_per_s: ours.images_per_s,
      ours_step_ms: ours.step_ms,
      ours_backend: `${ours.backend} ×${ours.workers} workers`,
      peer_images_per_s: peer.images_per_s,
      peer_step_ms: peer.step_ms,
      peer_backend: peer.backend,
      ratio: (ours.images_per_s as number) / (peer.images_per_s as number),
    });
  }
  const date = new Date().toISOString().slice(0, 10), machine = await machineLine();
  const table: ResultTable = {
    name: "bench_peer",
    title: "This project vs PyTorch on the same machine",
    intro: [
      `${date}, ${machine}. Ours: ${rows[0]?.ours_backend}; peer: ${
        rows[0]?.peer_backend
      }, bench/peer_torch.py${
        core ? `; both OpenBLAS with OPENBLAS_CORETYPE=${core}` : ""
      }. ratio = our images/s ÷ PyTorch's (> 1: we are faster). Command: \`deno task bench:peer\` (runs: ${
        a["runs-infer"]
      } inference, ${a["runs-train"]} training, after warm-up).`,
    ],
    columns: [
      { key: "model", title: "model" },
      { key: "mode", title: "mode" },
      { key: "batch", title: "batch", digits: 0 },
      { key: "ours_images_per_s", title: "ours im/s" },
      { key: "ours_step_ms", title: "ours ms", digits: 0 },
      { key: "peer_images_per_s", title: "PyTorch im/s" },
      { key: "peer_step_ms", title: "PyTorch ms", digits: 0 },
      { key: "ratio", title: "ratio" },
    ],
    rows,
    notes: [],
    meta: { date, machine },
  };
  console.log(tableText(table));
  await writeTable(table, repoPath("results"));
});
