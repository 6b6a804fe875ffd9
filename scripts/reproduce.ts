/**
 * `deno task reproduce [--preset full|smoke]`: the project's main job. It runs every experiment the notebooks
 * need and regenerates the result tables and figures, then executes the notebooks headless:
 *   1. the model table (Table 1) and evaluations through `deno task eval`'s path (the reference fixture
 *      checkpoint on Fashion-MNIST test images; DeiT-Ti end-to-end eval throughput);
 *   2. the grids of configs/grids/ (recipe, distill, transfer) through the sweep runner: finished runs are
 *      skipped, interrupted ones resume from their checkpoints, two runs side by side on 2 cores;
 *   3. the tables: ablation (Table 8), distillation (Table 3), teachers (Table 2), transfer, resolution, and
 *      throughput (Table 1/5 method) with the Figure-1-style plot;
 *   4. the notebooks in notebooks/, executed in place (full) so that they carry the results.
 * Full writes results/ (runs under results/runs); smoke writes .cache/smoke/ with seconds-long stand-in runs —
 * the test suite runs it.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/accel/backend.ts";
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { fromFileUrl, REPO_ROOT } from "../lib/base/paths.ts";
import { fmtSeconds } from "../lib/base/progress.ts";
import { loadCheckpoint, saveSafetensors } from "../lib/io/checkpoint.ts";
import { writeGreyImageFolder } from "../lib/data/export.ts";
import { FASHION_MNIST_CLASSES, readFashionMnist } from "../lib/data/formats/mod.ts";
import { scanImageFolder } from "../lib/data/imagefolder.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { buildModel } from "../lib/models/registry.ts";
import { machineLine } from "../lib/base/machine.ts";
import { claimsFigure, claimsTable, readmeClaimsBlock, withClaimsBlock } from "../lib/report/claims.ts";
import { readRun } from "../lib/report/runs.ts";
import {
  ablationFigure,
  ablationTable,
  distillationTable,
  modelTable,
  recipeCurves,
  resolutionTable,
  teacherTable,
  transferTable,
} from "../lib/report/tables.ts";
import {
  type Cell,
  type ResultTable,
  tableMarkdown,
  tableText,
  writeTable,
} from "../lib/report/result_table.ts";
import { saveFigure } from "../lib/report/plots.ts";
import {
  figure1,
  measureThroughput,
  readThroughputRecord,
  throughputTable,
} from "../lib/report/throughput.ts";
import { prepareClaimRuns, prepareRuns } from "./experiments.ts";

const USAGE =
  `usage: deno task reproduce [--preset full|smoke] [--devices cpu|LIST] [--backend auto|…] [--no-notebooks]
  [--no-throughput] [--images 500] [--throughput-images 64]`;
const ROOT = `${REPO_ROOT}/`;
const FIXTURES = fromFileUrl(new URL("../../shared/fixtures/reference/", import.meta.url));
const GRIDS = ["recipe", "distill", "transfer", "headline"];
const NOTEBOOKS = ["01_vit_baseline", "02_deit_training", "03_distillation", "04_transfer", "05_throughput"];

type Preset = "full" | "smoke";

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["backend", "images", "throughput-images", "preset", "devices"],
    boolean: ["no-notebooks", "no-throughput", "no-train"],
    default: { backend: "auto", images: "500", "throughput-images": "64", preset: "full", devices: "cpu" },
  }, USAGE);
  const preset = String(a.preset);
  if (preset !== "full" && preset !== "smoke") {
    throw new UsageError(`--preset must be full or smoke\n${USAGE}`);
  }
  const t0 = performance.now();
  const backend = await initBackend(String(a.backend));
  const when = new Date().toISOString().slice(0, 10);
  const machine = await machineLine();
  const out = preset === "full" ? `${ROOT}results` : `${ROOT}.cache/smoke/results`;
  await Deno.mkdir(`${out}/figures`, { recursive: true });
  const written: string[] = [];
  const put = async (t: ResultTable) => {
    written.push(...await writeTable(t, out));
    console.log("\n" + tableMarkdown(t));
  };

  // 1. Model table -------------------------------------------------------------------------------------
  await put(modelTable());

  // 2. Evaluations through the eval path ------------------------------------------------------------------
  const evals = await evalTable(preset, {
    images: preset === "smoke" ? 100 : intFlag(a.images, "images"),
    throughputImages: preset === "smoke" ? 4 : intFlag(a["throughput-images"], "throughput-images"),
    backend: backend.name,
    when,
    machine,
  });
  written.push(...await writeTable(evals, out));
  console.log("\n" + tableText(evals));
  tf.disposeVariables();

  // 3. The grids' runs (resumable; finished runs are skipped) ----------------------------------------------
  // --no-train: tables, figures and notebooks from the runs as they are (unfinished rows show their status).
  const train = { preset, train: !a["no-train"], devices: String(a.devices) } as const;
  const ex = await prepareRuns(GRIDS, train);
  // The claims (results/claims.md): claim (d)'s teachers are matched in accuracy before their students train.
  await prepareClaimRuns(train);

  // 4. Tables and figures --------------------------------------------------------------------------------
  const ablation = await ablationTable(ex.root);
  await put(ablation);
  await put(await distillationTable(ex.root));
  await put(await teacherTable(ex.root));
  await put(await transferTable(ex.root));
  await put(await resolutionTable(ex.root));
  const claims = await claimsTable(ex.root);
  await put(claims);
  if (preset === "full") await writeReadmeClaims(claims.rows);
  const fig = (f: Parameters<typeof saveFigure>[0], name: string) =>
    saveFigure(f, `${out}/figures`, name).then((p) => written.push(p));
  await fig(ablationFigure(ablation), "ablation");
  await fig(await recipeCurves(ex.root), "recipe_curves");
  await fig(await claimsFigure(ex.root), "claims");

  // 5. Throughput (Table 1/5 method) ----------------------------------------------------------------------
  if (!a["no-throughput"]) {
    const results = await measureThroughput(preset, { log: console.log });
    await Deno.writeTextFile(
      `${out}/throughput_measured.json`,
      JSON.stringify({ machine, date: when, results }, null, 2) + "\n",
    );
    written.push(`${out}/throughput_measured.json`);
    await put(throughputTable(results, machine, when));
    await fig(figure1(results), "figure1");
  } else {
    // Not measured now: the table and figure are rebuilt from the last measurement, when there is one.
    const last = await readThroughputRecord(`${out}/throughput_measured.json`);
    if (last) {
      await put(throughputTable(last.results, last.machine, last.date));
      await fig(figure1(last.results), "figure1");
    }
  }

  // 6. Notebooks, executed headless ------------------------------------------------------------------------
  if (!a["no-notebooks"]) await executeNotebooks(preset);
  const rel = (p: string) => p.startsWith(ROOT) ? p.slice(ROOT.length) : p;
  console.log(`\nwrote ${written.map(rel).join(", ")}`);
  console.log(
    `reproduce --preset ${preset}: ${fmtSeconds((performance.now() - t0) / 1000, "words")} on ${machine}`,
  );
});

/** The README's claims block from the claims rows (results/claims.json's), laid out by `deno fmt`. */
async function writeReadmeClaims(rows: Record<string, Cell>[]): Promise<void> {
  const path = `${ROOT}README.md`;
  await Deno.writeTextFile(path, withClaimsBlock(await Deno.readTextFile(path), readmeClaimsBlock(rows)));
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path], stdout: "null" })
    .output();
  if (!fmt.success) {
    throw new Error(`deno fmt README.md failed: ${new TextDecoder().decode(fmt.stderr).trim()}`);
  }
}

/**
 * results/eval.{md,csv,json}: models through `deno task eval`'s path (buildModel + loadCheckpoint + evaluate on
 * an ImageFolder of Fashion-MNIST test images written as PNG): the reference fixture and a random DeiT-Ti (the
 * loader, checkpoint reader and model; eval throughput), then the trained models that matter beside the
 * accuracy their run logged.
 */
async function evalTable(
  preset: Preset,
  o: { images: number; throughputImages: number; backend: string; when: string; machine: string },
): Promise<ResultTable> {
  const cache = `${ROOT}.cache`;
  const test = await readFashionMnist("test");
  const folder = await writeGreyImageFolder(
    test,
    FASHION_MNIST_CLASSES,
    `${cache}/fmnist-test-${o.images}`,
    o.images,
  );
  const evals: Record<string, Cell>[] = [];

  const fixtureModel = buildModel("vit_mini_patch8_32");
  await loadCheckpoint(fixtureModel, `${FIXTURES}vit_mini.safetensors`);
  const samples = (await scanImageFolder(folder)).samples;
  const r1 = await evaluate(fixtureModel, samples, { size: 32, batchSize: 100 });
  fixtureModel.dispose();
  evals.push({
    model: "vit_mini_patch8_32",
    checkpoint: "shared/fixtures/reference/vit_mini.safetensors (random weights)",
    data: `Fashion-MNIST test, first ${r1.count}`,
    top1: r1.top1,
    top5: r1.top5,
    images: r1.count,
    images_per_s: r1.imagesPerS,
    batch_size: 100,
    note: "random weights: ~10% (chance) is the expected top-1",
  });

  const tiny = buildModel("deit_tiny_patch16_224", {}, 0);
  const ckpt = `${cache}/deit_tiny_random.safetensors`;
  await saveSafetensors(tiny, ckpt, { note: "random init (seed 0), for throughput only" });
  tiny.dispose();
  const tiny2 = buildModel("deit_tiny_patch16_224");
  await loadCheckpoint(tiny2, ckpt);
  const r2 = await evaluate(tiny2, samples.slice(0, o.throughputImages), { size: 224, batchSize: 32 });
  tiny2.dispose();
  evals.push({
    model: "deit_tiny_patch16_224",
    checkpoint: "random init written to and read from safetensors",
    data: `Fashion-MNIST test, first ${r2.count}, upsampled to 224`,
    top1: r2.top1,
    top5: r2.top5,
    images: r2.count,
    images_per_s: r2.imagesPerS,
    batch_size: 32,
    note: "end-to-end eval throughput (decode + transform + forward)",
  });
  evals.push(...await trainedEvals(preset, test, cache));
  for (const e of evals) {
    Object.assign(e, { backend: o.backend, date: o.when, machine: o.machine });
    e.run_on = e.batch_size ? `${e.backend}, batch ${e.batch_size}` : null;
  }
  return {
    name: "eval",
    title: "Evaluation through `deno task eval`'s path",
    intro: [
      `Generated by \`deno task reproduce\` on ${o.when}, ${o.machine}. The released DeiT weights and ImageNet ` +
      `cannot be downloaded here. The first two rows exercise the loader, checkpoint reader and model with ` +
      `random weights (chance accuracy expected); the rest are the models trained here, evaluated from their ` +
      `checkpoints through the same path on the Fashion-MNIST test images written as a PNG ImageFolder, their ` +
      `run's own logged accuracy beside.`,
    ],
    columns: [
      { key: "model", title: "model" },
      { key: "checkpoint", title: "checkpoint" },
      { key: "data", title: "data" },
      { key: "top1", title: "top-1" },
      { key: "top5", title: "top-5" },
      { key: "images_per_s", title: "images/s" },
      { key: "run_on", title: "backend" },
    ],
    rows: evals,
    notes: [],
  };
}

/** The headline pair, the claims teachers and the best distilled student, each from its final checkpoint. */
async function trainedEvals(
  preset: Preset,
  test: Awaited<ReturnType<typeof readFashionMnist>>,
  cache: string,
): Promise<Record<string, Cell>[]> {
  const root = preset === "full" ? `${ROOT}results/runs` : `${ROOT}.cache/smoke/runs`;
  const nTest = preset === "smoke" ? 100 : test.images.length;
  const testFolder = await writeGreyImageFolder(
    test,
    FASHION_MNIST_CLASSES,
    `${cache}/fmnist-test-${nTest}`,
    nTest,
  );
  const testSamples = (await scanImageFolder(testFolder)).samples;
  const students = ["soft", "hard", "token", "token-deit"].flatMap((m) =>
    [0, 1, 2].map((s) => `claims-distill/${m}-s${s}`)
  );
  const done = async (id: string) => {
    const r = await readRun(`${root}/${id}`);
    return r?.done ? r : null;
  };
  let best: { id: string; acc: number } | null = null;
  for (const id of students) {
    const r = await done(id);
    if (r && (!best || r.acc1 > best.acc)) best = { id, acc: r.acc1 };
  }
  const trained: [string, string][] = [
    ["headline/fmnist-deit", "the headline model (DeiT recipe, 60k images, 100 epochs)"],
    ["headline/fmnist-vit-plain", "its plain-recipe twin"],
    ["claims/teacher-regnet", "the convnet teacher (RegNetY-200MF, final weights)"],
    ["claims/teacher-deit", "the transformer teacher (deit_micro, final weights)"],
    ...(best ? [[best.id, "the best distilled student"] as [string, string]] : []),
  ];
  const evals: Record<string, Cell>[] = [];
  for (const [id, what] of trained) {
    const run = await done(id);
    if (!run) {
      evals.push({
        model: id,
        checkpoint: `${id} (${what})`,
        data: "not finished yet",
        top1: NaN,
        top5: NaN,
        images: 0,
        images_per_s: NaN,
        batch_size: 0,
        note: "run not finished",
      });
      continue;
    }
    const ckpt = `${root}/${id}/checkpoint-last.safetensors`;
    const m = buildModel(run.config.model, {
      numClasses: run.derived.num_classes,
      imgSize: run.derived.img_size,
    });
    await loadCheckpoint(m, ckpt);
    const r = await evaluate(m, testSamples, { size: run.derived.img_size, batchSize: 100 });
    m.dispose();
    evals.push({
      model: run.config.model,
      checkpoint: `${id}/checkpoint-last (${what}; its log: ${run.acc1.toFixed(2)})`,
      data: `Fashion-MNIST test, all ${r.count}`,
      top1: r.top1,
      top5: r.top5,
      images: r.count,
      images_per_s: r.imagesPerS,
      batch_size: 100,
      note: `logged test top-1 ${run.acc1.toFixed(2)}`,
    });
  }
  return evals;
}

/**
 * The notebooks run under the Jupyter kernel "deno", which is registered per user: another checkout's setup may
 * have pointed it at its own Deno, since removed. Registers this Deno when the kernel runs another one.
 */
async function ensureDenoKernel(): Promise<void> {
  let argv0: string | undefined;
  try {
    const out = await new Deno.Command("jupyter", {
      args: ["kernelspec", "list", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    argv0 = JSON.parse(new TextDecoder().decode(out.stdout)).kernelspecs?.deno?.spec?.argv?.[0];
  } catch {
    return; // no jupyter: nbconvert's own error says so
  }
  const real = (p: string) => Deno.realPath(p).catch(() => null);
  const [kernel, self] = [argv0 ? await real(argv0) : null, await real(Deno.execPath())];
  if (kernel !== null && kernel === self) return;
  console.log(
    `the Jupyter kernel "deno" ${
      argv0 ? `runs ${argv0}${kernel ? "" : " (missing)"}` : "is not registered"
    }: registering this Deno (${Deno.execPath()})`,
  );
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["jupyter", "--install", "--force"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`deno jupyter --install failed: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
}

/** The notebooks executed headless under the Deno kernel: in place (full) or into .cache/smoke/notebooks. */
async function executeNotebooks(preset: Preset): Promise<void> {
  await ensureDenoKernel();
  for (const nb of NOTEBOOKS) {
    const t = performance.now();
    const args = [
      "nbconvert",
      "--to",
      "notebook",
      "--execute",
      "--ExecutePreprocessor.kernel_name=deno",
      "--ExecutePreprocessor.timeout=-1",
    ];
    if (preset === "full") args.push("--inplace");
    else args.push("--output-dir", `${ROOT}.cache/smoke/notebooks`);
    const r = await new Deno.Command("jupyter", {
      args: [...args, `${ROOT}notebooks/${nb}.ipynb`],
      env: { DEIT_PRESET: preset, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).split("\n").slice(-25).join("\n");
      throw new Error(`notebook ${nb} failed:\n${err}`);
    }
    console.log(`notebook ${nb}: executed (${fmtSeconds((performance.now() - t) / 1000, "words")})`);
  }
}
