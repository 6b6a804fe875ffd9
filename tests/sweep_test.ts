/**
 * Sweeps: grid files are checked (errors name the file and row), runs are scheduled on slots (fake jobs that
 * write log lines stand in for training), an aborted sweep resumes only its unfinished runs, a failing row is
 * isolated and blocks its dependents, Slurm scripts hold the right arrays; and for real: a training run stopped
 * by SIGTERM resumes to the numbers of an uninterrupted one, and a 2-row grid runs end to end through
 * scripts/sweep.ts and scripts/train.ts.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { fromFileUrl, REPO_ROOT } from "../lib/base/paths.ts";
import { type CommandBuilder, shellLine, trainCommand } from "../lib/sweep/command.ts";
import {
  expandGrid,
  GridError,
  listGrids,
  loadGrid,
  planSweep,
  type RunSpec,
  runsRoot,
  writeRunConfig,
} from "../lib/sweep/grid.ts";
import { runSweep } from "../lib/sweep/runner.ts";
import { parseDevices } from "../lib/sweep/slots.ts";
import { slurmScripts, writeSlurm } from "../lib/sweep/slurm.ts";
import { runStatus } from "../lib/sweep/status.ts";
import { statusTable, timeLeft } from "../lib/sweep/view.ts";
import { loadConfigFile } from "../lib/train/config.ts";
import { tinyRunConfig, trainProcess } from "./helpers.ts";

const FAKE = fromFileUrl(new URL("./fixtures_sweep/fake_job.ts", import.meta.url));
const TINY_GRID = fromFileUrl(new URL("./fixtures_sweep/tiny.ts", import.meta.url));
const SWEEP = fromFileUrl(new URL("../scripts/sweep.ts", import.meta.url));
const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);
const dec = new TextDecoder();

/** A grid file in a temporary folder (JSON, `base` fmnist-deit); loose on purpose: some are wrong. */
async function gridFile(dir: string, name: string, grid: Record<string, unknown>): Promise<string> {
  const path = `${dir}/${name}.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({ description: "test grid", base: "fmnist-deit", ...grid }),
  );
  return path;
}

/** Fake jobs: `epochs` from the run's config, `ms` per epoch, rows named in `fail` exit 1 after one epoch. */
function fake(ms: number, fail: string[] = []): CommandBuilder {
  return (run) => ({
    cmd: Deno.execPath(),
    args: [
      "run",
      "-A",
      FAKE,
      run.dir,
      String(run.config.epochs),
      String(ms),
      fail.includes(run.row.name) ? "fail" : "ok",
    ],
  });
}

async function fakeRuns(dir: string, rows: unknown[], epochs = 2): Promise<RunSpec[]> {
  await Deno.mkdir(dir, { recursive: true });
  const path = await gridFile(dir, "g", { overrides: { epochs }, rows });
  return expandGrid(await loadGrid(path), { preset: "full", root: `${dir}/runs` });
}

const starts = async (r: RunSpec) =>
  (await Deno.readTextFile(`${r.dir}/starts`).catch(() => "")).trim().split("\n").filter((l) => l).map((l) =>
    l.replace(/ \d+$/, "")
  );

Deno.test("grid: errors name the file and the row (unknown key, duplicate, bad need, cycle)", async () => {
  const dir = await Deno.makeTempDir();
  const bad = async (grid: Record<string, unknown>, ...parts: string[]) => {
    const path = await gridFile(dir, "bad", grid);
    const e = await assertRejects(() => loadGrid(path), GridError);
    for (const p of [path, ...parts]) assertStringIncludes(e.message, p);
  };
  await bad(
    { rows: [{ name: "a" }, { name: "b", overrides: { learning_rate: 1 } }] },
    "row 'b'",
    "unknown config key 'learning_rate'",
  );
  await bad(
    { rows: [{ name: "b", overrides: { epochs: "3" } }] },
    "row 'b'",
    `epochs must be a positive integer, got "3"`,
  );
  await bad(
    { rows: [{ name: "b", overrides: { lr: -1 } }] },
    "row 'b'",
    "lr must be a positive number, got -1",
  );
  await bad({ rows: [{ name: "a" }, { name: "a" }] }, "row 'a'", "duplicate row name");
  await bad({ rows: [{ name: "A b" }] }, "row 'A b'", "[a-z0-9_.-]+");
  await bad({ rows: [{ name: "a", needs: ["nope"] }] }, "row 'a' needs 'nope'", "not a row of this grid");
  await bad({ rows: [{ name: "a", lable: "x" }] }, "row 'a'", "unknown row field 'lable'");
  await bad({ overrides: { epoch: 3 } as never, rows: [{ name: "a" }] }, "did you mean epochs");
  await bad(
    { rows: [{ name: "a", needs: ["c"] }, { name: "b", needs: ["a"] }, { name: "c", needs: ["b"] }] },
    "cycle: a → c → b → a",
  );
  await assertRejects(() => loadGrid("no-such-grid"), GridError, "no grid 'no-such-grid'");
  // Across grids: a needs y/b, y's b needs x/a.
  await gridFile(dir, "x", { rows: [{ name: "a", needs: ["y/b"] }] });
  await gridFile(dir, "y", { rows: [{ name: "b", needs: ["x/a"] }] });
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    await assertRejects(() => planSweep(["x.json"], { preset: "full" }), GridError, "cycle: x/a → y/b → x/a");
    await gridFile(dir, "z", { rows: [{ name: "a", needs: ["y/nope"] }] });
    await assertRejects(
      () => planSweep(["z.json"], { preset: "full" }),
      GridError,
      "grid 'y' has no row 'nope'",
    );
  } finally {
    Deno.chdir(cwd);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("grid: base ← grid ← row ← smoke, {runs}, folders, needs; sweep-config.json loads as a config", async () => {
  const dir = await Deno.makeTempDir();
  const path = await gridFile(dir, "g", {
    overrides: { epochs: 7, lr: 1e-3 },
    smoke: { epochs: 1, train_limit: 64 },
    rows: [
      { name: "teacher", overrides: { model: "regnety_mini" } },
      {
        name: "student",
        label: "distilled",
        overrides: { lr: 2e-3, teacher_checkpoint: "{runs}/g/teacher" },
        needs: ["teacher", "other/x"],
        paper: 81.2,
      },
    ],
  });
  const g = await loadGrid(path);
  assertEquals(g.name, "g");
  const full = await expandGrid(g, { preset: "full" });
  assertEquals(full.map((r) => [r.id, r.dir]), [["g/teacher", "results/runs/g/teacher"], [
    "g/student",
    "results/runs/g/student",
  ]]);
  assertEquals([full[1].config.epochs, full[1].config.lr, full[1].config.batch_size], [7, 2e-3, 256]);
  assertEquals(full[1].config.teacher_checkpoint, "results/runs/g/teacher");
  assertEquals(full[1].needs, ["g/teacher", "other/x"]);
  assertEquals([full[0].config.model, full[0].config.lr, full[0].config.train_limit], [
    "regnety_mini",
    1e-3,
    0,
  ]);
  const smoke = await expandGrid(g, { preset: "smoke", root: `${dir}/r` });
  assertEquals([smoke[1].config.epochs, smoke[1].config.train_limit], [1, 64]);
  assertEquals(smoke[1].config.teacher_checkpoint, `${dir}/r/g/teacher`);
  assertEquals([runsRoot("full"), runsRoot("smoke"), runsRoot("full", "x/")], [
    "results/runs",
    ".cache/smoke/runs",
    "x",
  ]);
  const file = await loadConfigFile(await writeRunConfig(smoke[1]));
  assertEquals(file.config, { ...smoke[1].config });
  assertStringIncludes(file.description, "g/student (distilled)");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("every grid in configs/grids/ loads and expands in both presets, with the rows it needs", async () => {
  const names = await listGrids();
  for (const preset of ["full", "smoke"] as const) {
    const runs = await planSweep(names, { preset });
    assert(runs.length >= names.length);
    for (const r of runs) {
      for (const n of r.needs) assert(runs.some((x) => x.id === n), `${r.id} needs ${n}`);
    }
  }
});

Deno.test("runner: devices give slots; the train command as documented", async () => {
  const train = trainCommand("scripts/train.ts");
  const cpu = parseDevices("cpu", { cores: 2 });
  assertEquals(cpu.map((s) => [s.name, s.workers]), [["cpu0", 1], ["cpu1", 1]]);
  assertEquals(parseDevices("cpu", { cores: 16 }).map((s) => s.workers), new Array(8).fill(2));
  assertEquals(parseDevices("cpu", { cores: 2, maxParallel: 1 }).map((s) => s.workers), [2]);
  assertEquals(parseDevices("cpu:3", { cores: 12 }).map((s) => s.workers), [4, 4, 4]);
  const gpus = parseDevices("0,1,2,3", { maxParallel: 2 });
  assertEquals(gpus.map((s) => s.gpu), ["0", "1"]);
  assertThrows(() => parseDevices("gpu0"), Error, "expected cpu, cpu:N or GPU ids");
  const dir = await Deno.makeTempDir();
  const [run] = await fakeRuns(dir, [{ name: "a" }]);
  const c = train(run, cpu[0], { resume: true });
  assertEquals(
    shellLine(c),
    `DEIT_BLAS_THREADS=1 deno run -A scripts/train.ts --config ${run.dir}/sweep-config.json --out ${run.dir} ` +
      `--resume --workers 1`,
  );
  const g = train(run, gpus[1], { resume: false });
  // CUDA for TensorFlow; Mesa's device selection for WebGPU (the Nth GPU after the default one, alone).
  assertEquals(g.env, { CUDA_VISIBLE_DEVICES: "1", VK_LOADER_DRIVERS_DISABLE: "*lvp*", DRI_PRIME: "1!" });
  assertEquals(
    train(run, gpus[0], { resume: false }).env?.MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE,
    "1",
  );
  // With nvidia-smi's PCI addresses, WebGPU's GPU is named by its address (Mesa's tag: pci-DDDD_BB_DD_F).
  const [bus] = parseDevices("1", { busIds: ["00000000:1A:00.0", "00000000:1B:00.0"] });
  assertEquals(bus.busId, "00000000:1B:00.0");
  assertEquals(train(run, bus, { resume: false }).env?.DRI_PRIME, "pci-0000_1b_00_0!");
  assert(!g.args.includes("--workers") && !g.args.includes("--backend"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runner: 2 slots run 2 jobs at once, 1 slot one after the other; done runs are skipped", async () => {
  const dir = await Deno.makeTempDir();
  const runs = await fakeRuns(dir, [{ name: "a" }, { name: "b" }]);
  const lines: string[] = [];
  const two = await runSweep(runs, {
    slots: parseDevices("cpu:2"),
    command: fake(250),
    tty: false,
    pollMs: 50,
    write: (t) => lines.push(t),
  });
  assertEquals(two.results.map((r) => r.outcome), ["done", "done"]);
  const [a, b] = two.results;
  assert(a.started! < b.ended! && b.started! < a.ended!, "the two runs did not overlap");
  assertEquals(new Set([a.slot, b.slot]), new Set(["cpu0", "cpu1"]));
  assertMatch(lines.join(""), /g\/a: epoch 1\/2, acc1 10\.00/);
  assertMatch(lines.join(""), /g\/b: done in/);
  for (const r of runs) {
    const s = await runStatus(r.dir);
    assertEquals([s.state, s.epoch, s.epochs, s.best], ["done", 1, 2, 20]);
    assertStringIncludes(await Deno.readTextFile(`${r.dir}/train.log`), "fake: done");
  }
  // Rerun: both done, nothing starts.
  const again = await runSweep(runs, { slots: parseDevices("cpu:2"), command: fake(250), write: () => {} });
  assertEquals(again.results.map((r) => r.outcome), ["skipped", "skipped"]);

  const runs1 = await fakeRuns(`${dir}/one`, [{ name: "a" }, { name: "b" }]);
  const one = await runSweep(runs1, { slots: parseDevices("cpu:1"), command: fake(150), write: () => {} });
  const [a1, b1] = one.results;
  assertEquals([a1.outcome, b1.outcome], ["done", "done"]);
  assert(b1.started! >= a1.ended!, "one slot ran two jobs at once");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runner: a sweep stopped mid-way resumes only its unfinished runs", async () => {
  const dir = await Deno.makeTempDir();
  // short: 1 epoch; long1, long2: 6 epochs; 2 slots, so long2 starts when short ends.
  const runs = await fakeRuns(dir, [
    { name: "short", overrides: { epochs: 1 } },
    { name: "long1" },
    { name: "long2" },
  ], 6);
  const stop = new AbortController();
  const sweep = runSweep(runs, {
    slots: parseDevices("cpu:2"),
    command: fake(200),
    signal: stop.signal,
    write: () => {},
  });
  // Stop once long2 has logged an epoch (short is done by then). The bound is generous: on a loaded machine a
  // fake job's process can take seconds to start.
  for (let i = 0; i < 2400 && (await runStatus(runs[2].dir, 6)).epoch < 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert((await runStatus(runs[2].dir, 6)).epoch >= 0, "long2 never logged an epoch");
  stop.abort();
  const first = await sweep;
  assert(first.interrupted);
  assertEquals(first.results.map((r) => r.outcome), ["done", "interrupted", "interrupted"]);
  const mid = await Promise.all(runs.map((r) => runStatus(r.dir, r.config.epochs)));
  assertEquals(mid.map((s) => s.state), ["done", "partial", "partial"]);
  assert(mid[1].epoch < 5 && mid[2].epoch < 5);

  const second = await runSweep(runs, { slots: parseDevices("cpu:2"), command: fake(20), write: () => {} });
  assertEquals(second.results.map((r) => [r.outcome, r.resumed]), [["skipped", undefined], ["done", true], [
    "done",
    true,
  ]]);
  assertEquals(await starts(runs[0]), ["fresh"]);
  for (const r of runs.slice(1)) {
    const st = await starts(r);
    assertEquals(st.length, 2);
    assertEquals(st[0], "fresh");
    assertMatch(st[1], /^resume [1-5]$/);
    const log = (await Deno.readTextFile(`${r.dir}/log.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(log.map((l) => l.epoch), [0, 1, 2, 3, 4, 5]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runner: a failing run is isolated, reported with its log tail, and blocks its dependents", async () => {
  const dir = await Deno.makeTempDir();
  const runs = await fakeRuns(dir, [
    { name: "ok1" },
    { name: "bad" },
    { name: "child", needs: ["bad"] },
    { name: "grandchild", needs: ["child"] },
    { name: "ok2", needs: ["ok1"] },
  ]);
  const lines: string[] = [];
  const res = await runSweep(runs, {
    slots: parseDevices("cpu:2"),
    command: fake(50, ["bad"]),
    tty: false,
    write: (t) => lines.push(t),
  });
  assertEquals(res.results.map((r) => r.outcome), ["done", "failed", "blocked", "blocked", "done"]);
  assertEquals(res.failed.map((r) => [r.id, r.code]), [["g/bad", 1]]);
  assertStringIncludes(res.failed[0].tail!, "boom: this row fails on purpose");
  assertEquals(res.blocked.map((r) => r.reason), [
    "needs g/bad, which failed",
    "needs g/child, which is blocked",
  ]);
  assertStringIncludes(lines.join(""), "g/bad: FAILED (exit 1)");
  const st = await runStatus(runs[1].dir);
  assertEquals([st.state, st.failure?.code], ["failed", 1]);
  assertStringIncludes(st.failure!.tail, "boom");
  // Fixed: the next sweep resumes bad, then runs its dependents; the failure record goes.
  const res2 = await runSweep(runs, { slots: parseDevices("cpu:2"), command: fake(20), write: () => {} });
  assertEquals(res2.results.map((r) => r.outcome), ["skipped", "done", "done", "done", "skipped"]);
  assertEquals((await runStatus(runs[1].dir)).state, "done");
  await assertRejects(() => Deno.stat(`${runs[1].dir}/sweep-status.json`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runner: a started run whose grid row changed is not resumed with the new config", async () => {
  const dir = await Deno.makeTempDir();
  const rows = (
    lr: number,
  ) => [{ name: "started", overrides: { lr } }, { name: "finished", overrides: { lr } }];
  const [started, finished] = await fakeRuns(dir, rows(1e-3));
  for (const r of [started, finished]) {
    await writeRunConfig(r);
    await Deno.writeTextFile(
      `${r.dir}/log.jsonl`,
      JSON.stringify({ epoch: 0, test_acc1: 1, best_acc1: 1 }) + "\n",
    );
  }
  await Deno.writeTextFile(`${finished.dir}/log.jsonl`, JSON.stringify({ epoch: 1 }) + "\n", {
    append: true,
  });
  const lines: string[] = [];
  const res = await runSweep(await fakeRuns(dir, rows(3e-3)), {
    slots: parseDevices("cpu:1"),
    command: fake(10),
    tty: false,
    write: (t) => lines.push(t),
  });
  assertEquals(res.results.map((r) => r.outcome), ["failed", "skipped"]);
  assertStringIncludes(res.failed[0].tail!, "the grid changed since this run started (lr: 0.001 → 0.003)");
  assertStringIncludes(
    lines.join(""),
    "g/finished: already done (2/2 epochs, best 1.00); NOTE: with an older config",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("slurm: one array job per dependency level, chained with afterok; --resume, gres, folders", async () => {
  const dir = await Deno.makeTempDir();
  const runs = await fakeRuns(dir, [
    { name: "t1", label: "teacher" },
    { name: "a" },
    { name: "s1", needs: ["t1"] },
    { name: "s2", needs: ["t1"] },
  ]);
  const plan = slurmScripts(runs, {
    outDir: `${dir}/runs/g`,
    name: "g",
    repo: "/repo",
    trainScript: "scripts/train.ts",
  });
  assertEquals(plan.scripts.map((s) => [s.file, s.runs.map((r) => r.row.name)]), [
    ["g.L0.sbatch", ["t1", "a"]],
    ["g.L1.sbatch", ["s1", "s2"]],
  ]);
  const l0 = plan.scripts[0].content;
  for (
    const line of [
      "#!/bin/bash",
      "#SBATCH --job-name=g.L0",
      "#SBATCH --array=0-1",
      "#SBATCH --gres=gpu:1",
      "#SBATCH --cpus-per-task=8",
      "#SBATCH --mem=64G",
      "#SBATCH --signal=B:TERM@120",
      "#SBATCH --requeue",
      "#SBATCH --chdir=/repo",
      `#SBATCH --output=${dir}/runs/g/slurm-%x-%A_%a.out`,
      `  ${dir}/runs/g/t1  # teacher`,
      `  ${dir}/runs/g/a`,
      'DIR="${RUNS[$SLURM_ARRAY_TASK_ID]}"',
      "cd /repo",
      'exec deno run -A scripts/train.ts --config "$DIR/sweep-config.json" --out "$DIR" --resume >> "$DIR/train.log" 2>&1',
    ]
  ) assert(l0.split("\n").includes(line), `missing line: ${line}\n${l0}`);
  assertStringIncludes(plan.scripts[1].content, "#SBATCH --array=0-1");
  assertEquals(plan.submit.split("\n").filter((l) => l.startsWith("j")), [
    'j0=$(sbatch --parsable "$@" g.L0.sbatch)',
    "j0=${j0%%;*}",
    'j1=$(sbatch --parsable --dependency=afterok:$j0 "$@" g.L1.sbatch)',
    "j1=${j1%%;*}",
  ]);
  // Without needs: one <grid>.sbatch; files written, with every run's sweep-config.json.
  const flat = runs.filter((r) => !r.needs.length);
  const w = await writeSlurm(flat, { outDir: `${dir}/out`, name: "g", trainScript: "scripts/train.ts" });
  assertEquals(w.paths, [`${dir}/out/g.sbatch`, `${dir}/out/submit.sh`]);
  assertStringIncludes(await Deno.readTextFile(`${dir}/out/g.sbatch`), `#SBATCH --chdir=${REPO_ROOT}`);
  assertEquals((await Deno.stat(`${dir}/out/submit.sh`)).mode! & 0o111, 0o111);
  for (const r of flat) await loadConfigFile(`${r.dir}/sweep-config.json`);
  const bash = await new Deno.Command("bash", { args: ["-n", `${dir}/out/g.sbatch`] }).output();
  assertEquals(bash.code, 0, dec.decode(bash.stderr));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sweep CLI: --dry-run lists runs and commands; errors are one line with exit 2", async () => {
  const dir = await Deno.makeTempDir();
  const sweep = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SWEEP, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  const dry = await sweep(["--grid", TINY_GRID, "--root", dir, "--dry-run", "--devices", "cpu:2"]);
  const out = dec.decode(dry.stdout);
  assertEquals(dry.code, 0, dec.decode(dry.stderr));
  assertMatch(out, /tiny\/a +pending/);
  assertStringIncludes(
    out,
    `tiny/b: DEIT_BLAS_THREADS=1 deno run -A scripts/train.ts --config ${dir}/tiny/b/sweep-config.json --out ${dir}/tiny/b --workers 1`,
  );
  const path = await gridFile(dir, "bad", { rows: [{ name: "a", overrides: { lr_x: 1 } }] });
  for (
    const [args, msg] of [
      [["--grid", path], "row 'a': unknown config key 'lr_x'"],
      [["--grid", "no-such-grid"], "no grid 'no-such-grid'"],
      [["--grid", TINY_GRID, "--devices", "gpu"], "expected cpu, cpu:N or GPU ids"],
      [["--grid", TINY_GRID, "--bogus"], "unknown argument --bogus"],
    ] as const
  ) {
    const r = await sweep([...args]);
    const err = dec.decode(r.stderr);
    assertEquals(r.code, 2, err);
    assertStringIncludes(err, msg);
    assert(!err.includes("    at "), `stack trace printed: ${err}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "train: SIGTERM writes checkpoint-last after the step and exits 130; --resume ends as an uninterrupted run",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const tiny = tinyRunConfig({ eval_limit: 32, epochs: 2 });
    await Deno.writeTextFile(`${dir}/tiny.json`, JSON.stringify(tiny));
    const train = (out: string, extra: string[] = []) =>
      trainProcess(["--config", `${dir}/tiny.json`, "--out", out, ...extra]);
    // The uninterrupted run and the interrupted one side by side (one engine each).
    const full = train(`${dir}/full`).output();
    const child = train(`${dir}/cut`).spawn();
    let err = "";
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    while (!err.includes("steps/epoch")) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    child.kill("SIGTERM"); // lands in (or before) the first step
    for (let r = await reader.read(); !r.done; r = await reader.read()) err += r.value;
    const { code } = await child.status;
    await child.stdout.cancel();
    assertEquals(code, 130, err);
    assertStringIncludes(err, `interrupted: checkpoint saved to ${dir}/cut/checkpoint-last.safetensors`);
    assertStringIncludes(err, "interrupted at epoch 0, batch 1 (step 1)");
    assertEquals((await Deno.readTextFile(`${dir}/cut/log.jsonl`)).trim(), "");
    const f = await full;
    assertEquals(f.code, 0, dec.decode(f.stderr));
    const resumed = await train(`${dir}/cut`, ["--resume"]).output();
    assertEquals(resumed.code, 0, dec.decode(resumed.stderr));
    const log = async (d: string) =>
      (await Deno.readTextFile(`${d}/log.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
    const [want, got] = [await log(`${dir}/full`), await log(`${dir}/cut`)];
    assertEquals(got.length, 2);
    for (let e = 0; e < 2; e++) {
      for (const k of ["lr", "train_loss", "test_loss", "test_acc1", "test_acc5", "steps", "best_acc1"]) {
        assertEquals(got[e][k], want[e][k], `epoch ${e} ${k}`);
      }
    }
    const [a, b] = [
      await readSafetensors(`${dir}/full/checkpoint-last.safetensors`),
      await readSafetensors(`${dir}/cut/checkpoint-last.safetensors`),
    ];
    assertEquals([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
    for (const [k, t] of a.tensors) assertEquals(b.tensors.get(k)!.data, t.data, k);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "sweep end to end: a 2-row grid through scripts/train.ts on 2 cpu slots; status reads the folders",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SWEEP, "--grid", TINY_GRID, "--root", dir, "--devices", "cpu:2"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = dec.decode(r.stdout);
    assertEquals(r.code, 0, out + dec.decode(r.stderr));
    assertStringIncludes(out, "2 done, 0 already done, 0 failed, 0 blocked, 0 interrupted");
    for (const row of ["a", "b"]) {
      const s = await runStatus(`${dir}/tiny/${row}`);
      assertEquals([s.state, s.epoch, s.epochs], ["done", 0, 1]);
      assert(Number.isFinite(s.acc1));
      const cfg = JSON.parse(await Deno.readTextFile(`${dir}/tiny/${row}/config.json`));
      assertEquals(cfg.derived.workers, 1);
      assertStringIncludes(await Deno.readTextFile(`${dir}/tiny/${row}/train.log`), "epoch 0:");
    }
    const st = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SWEEP, "status", "--grid", TINY_GRID, "--root", dir],
      stdout: "piped",
    }).output();
    const table = dec.decode(st.stdout);
    assertMatch(table, /tiny\/b +drop path 0 +done +1\/1/);
    assertStringIncludes(table, "2 runs: 2 done, 0 partial, 0 pending, 0 failed");
    await Deno.remove(dir, { recursive: true });
  },
});

// Slurm for real: a single-node cluster (slurmctld + slurmd in the foreground, auth/none, a fake GPU) in a
// temporary folder. Needs Debian's slurm-wlm and root (slurmd launches the jobs).
const slurmMissing = await (async () => {
  for (const bin of ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo"]) {
    const r = await new Deno.Command("bash", { args: ["-c", `command -v ${bin}`], stdout: "null" }).output();
    if (!r.success) return `${bin} is not installed (apt-get install slurm-wlm)`;
  }
  if (Deno.uid() !== 0) return "slurmd needs root";
  if (!haveFmnist) return "Fashion-MNIST is not installed";
  return "";
})();
if (slurmMissing) console.log(`sweep_test: the real Slurm test is skipped: ${slurmMissing}`);

Deno.test({
  name: "slurm for real: a single-node cluster runs a grid of 2 levels through submit.sh",
  ignore: slurmMissing !== "",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const host = Deno.hostname();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const conf = `${dir}/slurm.conf`;
    await Deno.mkdir(`${dir}/state`);
    await Deno.mkdir(`${dir}/spool`);
    await Deno.writeTextFile(
      conf,
      [
        "ClusterName=sweeptest",
        `SlurmctldHost=${host}`,
        `SlurmctldPort=${port}`,
        `SlurmdPort=${port + 1}`,
        "AuthType=auth/none",
        "CredType=cred/none",
        "SlurmUser=root",
        "SlurmdUser=root",
        `StateSaveLocation=${dir}/state`,
        `SlurmdSpoolDir=${dir}/spool`,
        `SlurmctldPidFile=${dir}/slurmctld.pid`,
        `SlurmdPidFile=${dir}/slurmd.pid`,
        `SlurmctldLogFile=${dir}/slurmctld.log`,
        `SlurmdLogFile=${dir}/slurmd.log`,
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "GresTypes=gpu",
        "ReturnToService=2",
        "MpiDefault=none",
        "JobCompType=jobcomp/none",
        "AccountingStorageType=accounting_storage/none",
        `NodeName=${host} CPUs=2 RealMemory=2048 Gres=gpu:1 State=UNKNOWN`,
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(`${dir}/gres.conf`, `NodeName=${host} Name=gpu File=/dev/null\n`);
    const env = { SLURM_CONF: conf };
    const daemon = (cmd: string, args: string[]) =>
      new Deno.Command(cmd, { args: [...args, "-D", "-f", conf], env, stdout: "null", stderr: "null" })
        .spawn();
    const daemons = [daemon("slurmctld", ["-i"]), daemon("slurmd", [])];
    const sh = async (line: string) => {
      const r = await new Deno.Command("bash", { args: ["-c", line], env, stdout: "piped", stderr: "piped" })
        .output();
      return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
    };
    try {
      let ready = "";
      for (let i = 0; i < 120 && ready !== "idle"; i++) {
        await new Promise((r) => setTimeout(r, 250));
        ready = (await sh("sinfo -h -o %t")).out.trim();
      }
      assertEquals(
        ready,
        "idle",
        `the test cluster did not come up:\n${await Deno.readTextFile(`${dir}/slurmd.log`)}`,
      );
      const path = await gridFile(dir, "chain", {
        overrides: {
          train_limit: 32,
          eval_limit: 32,
          epochs: 1,
          batch_size: 32,
          loader_workers: 0,
          workers: 1,
        },
        rows: [{ name: "first" }, { name: "second", needs: ["first"], overrides: { drop_path: 0 } }],
      });
      const runs = await planSweep([path], { preset: "full", root: `${dir}/runs` });
      const out = `${dir}/runs/chain`;
      // This node is small: ask for what it has (the defaults, 8 CPUs and 64G, are for a GPU node).
      const plan = await writeSlurm(runs, {
        outDir: out,
        name: "chain",
        trainScript: "scripts/train.ts",
        cpusPerTask: 1,
        mem: "500M",
      });
      assertEquals(plan.scripts.map((s) => s.file), ["chain.L0.sbatch", "chain.L1.sbatch"]);
      const sub = await sh(`bash ${out}/submit.sh`);
      assertEquals(sub.code, 0, sub.out + sub.err);
      assertMatch(sub.out, /chain\.L1\.sbatch: job \d+ \(1 run\(s\), after job \d+\)/);
      for (let i = 0; i < 600 && (await sh("squeue -h")).out.trim() !== ""; i++) {
        await new Promise((r) => setTimeout(r, 250));
      }
      const states = await Promise.all(runs.map((r) => runStatus(r.dir)));
      const logs = await Promise.all(
        runs.map((r) => Deno.readTextFile(`${r.dir}/train.log`).catch(() => "(no train.log)")),
      );
      assertEquals(states.map((s) => s.state), ["done", "done"], logs.join("\n----\n"));
      // The second level started after the first finished.
      const started = JSON.parse(await Deno.readTextFile(`${runs[1].dir}/config.json`)).started;
      const firstEnd = (await Deno.stat(`${runs[0].dir}/log.jsonl`)).mtime!;
      assert(new Date(started) >= firstEnd, `${started} vs ${firstEnd.toISOString()}`);
      assertStringIncludes(logs[0], "=== ");
      assertStringIncludes(logs[0], "--resume");
    } finally {
      for (const d of daemons) {
        try {
          d.kill("SIGTERM");
        } catch { /* gone */ }
        await d.status;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("compact: a finished run keeps its weights and EMA, drops the optimiser state and checkpoint-best", async () => {
  const { compactRun } = await import("../lib/sweep/compact.ts");
  const { writeSafetensors } = await import("../lib/io/safetensors.ts");
  const { readCheckpointFile } = await import("../lib/io/checkpoint.ts");
  const { resolveCheckpoint } = await import("../lib/io/train_state.ts");
  const dir = await Deno.makeTempDir();
  const t = (n: number) => ({ dtype: "F32" as const, shape: [n], data: new Float32Array(n).fill(1) });
  const sd = new Map([["w", t(4)], ["_train.optim.m.w", t(4)], ["_train.optim.v.w", t(4)], [
    "_train.ema.w",
    t(4),
  ]]);
  await writeSafetensors(`${dir}/checkpoint-last.safetensors`, sd, { train_state: "{}" });
  await Deno.copyFile(`${dir}/checkpoint-last.safetensors`, `${dir}/checkpoint-best.safetensors`);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ config: { epochs: 1 } }));
  await Deno.writeTextFile(
    `${dir}/log.jsonl`,
    JSON.stringify({ epoch: 0, test_acc1: 50, best_acc1: 50 }) + "\n",
  );
  const unfinished = await Deno.makeTempDir();
  await Deno.writeTextFile(`${unfinished}/config.json`, JSON.stringify({ config: { epochs: 2 } }));
  await Deno.writeTextFile(`${unfinished}/log.jsonl`, JSON.stringify({ epoch: 0 }) + "\n");
  assertEquals(await compactRun(unfinished), null);
  const r = (await compactRun(dir))!;
  assert(r.bytesAfter < r.bytesBefore / 2, JSON.stringify(r));
  const f = await readCheckpointFile(`${dir}/checkpoint-last.safetensors`);
  assertEquals([...f.stateDict.keys()].sort(), ["_train.ema.w", "w"]);
  assertEquals(f.metadata.train_state, "{}");
  assertEquals(await resolveCheckpoint(dir), `${dir}/checkpoint-last.safetensors`);
});

Deno.test("status: time left from the pace of the last epochs, a pending run's from runs like it", async () => {
  const dir = await Deno.makeTempDir();
  const runs = await fakeRuns(dir, [
    { name: "slow-start" },
    { name: "same" },
    { name: "other", overrides: { img_size: 44 } },
    { name: "done" },
  ], 20);
  const log = async (r: RunSpec, seconds: number[]) => {
    await Deno.mkdir(r.dir, { recursive: true });
    const lines = seconds.map((s, epoch) =>
      JSON.stringify({ epoch, seconds: s, test_acc1: 10, best_acc1: 10 })
    );
    await Deno.writeTextFile(`${r.dir}/log.jsonl`, lines.join("\n") + "\n");
  };
  // 12 epochs: two slow ones first (a loaded machine), then 10 at 30 s: the pace is 30 s, not the mean.
  await log(runs[0], [300, 300, ...Array(10).fill(30)]);
  await log(runs[3], Array(20).fill(50));
  const states = await Promise.all(runs.map((r) => runStatus(r.dir, 20)));
  assertEquals(states.map((s) => s.state), ["partial", "pending", "pending", "done"]);
  // "same" is like "slow-start" (model, data, size, batch, teacher, engines): the median pace of such runs
  // (30 and 50) for its 20 epochs; "other" (44 px) is like none that has logged an epoch.
  assertEquals(timeLeft(runs, states), [8 * 30, 20 * 40, null, 0]);
  const { table } = await statusTable(runs);
  assertStringIncludes(table, "~4m00s");
  assertMatch(table, /g\/other .* \? /);
  await Deno.remove(dir, { recursive: true });
});
