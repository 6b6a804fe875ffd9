/**
 * Nothing lies, and bad input is one clear line (issue #17 items 6 and 7): every config key is checked against
 * the one schema (config files, grid rows and flags alike) with an error naming the key and its range; the checks
 * that need the data, the machine or the run folder say what does not fit; NaN logits never count as hits and
 * stop a run; and the scripts print one line, never a stack, for bad flags, configs, paths and modules.
 *
 * The bulk calls the validators directly; a handful of real `deno task train` / `deno task eval` spawns prove
 * that no stack trace reaches the user.
 */
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import {
  checkPartial,
  checkResume,
  checkRunFits,
  checkWorkers,
  ConfigError,
  DEFAULTS,
  listConfigs,
  loadConfigFile,
  parseOverrides,
  resolveConfig,
  SCHEMA,
  type TrainConfig,
} from "../lib/train/config.ts";
import { expandGrid, GridError, listGrids, loadGrid } from "../lib/sweep/grid.ts";
import { DivergedError, evaluate, evaluateDataset, scoreRow } from "../lib/train/evaluate.ts";
import { isExpectedError } from "../lib/base/cli.ts";
import { scanImageFolder } from "../lib/data/imagefolder.ts";
import type { Dataset } from "../lib/data/dataset.ts";
import { OutOfMemoryError } from "../lib/train/memory.ts";
import { RunNotFoundError } from "../lib/report/runs.ts";
import { TeacherMatchError } from "../lib/report/teachers.ts";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { useBackend } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

const TRAIN = fromFileUrl(new URL("../scripts/train.ts", import.meta.url));
const EVAL = fromFileUrl(new URL("../scripts/eval.ts", import.meta.url));
const MATCH = fromFileUrl(new URL("../scripts/match_teachers.ts", import.meta.url));
const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);
const BASE = (await loadConfigFile("fmnist-10k")).config;

/** resolveConfig(fmnist-10k ← flags); the error's message, or "OK". */
function flags(...args: string[]): string {
  try {
    resolveConfig(BASE, parseOverrides(args));
    return "OK";
  } catch (e) {
    assert(e instanceof ConfigError, `${args.join(" ")}: not a ConfigError: ${(e as Error).stack}`);
    return e.message;
  }
}

Deno.test("flags: every value out of range or of the wrong form is refused, naming the key and its range", () => {
  const cases: [string[], string][] = [
    [["--lr", "-1"], "--lr must be a positive number, got -1"],
    [["--lr", "0"], "--lr must be a positive number, got 0"],
    [["--lr", "0x10"], "--lr must be a positive number, written in decimal (like 0.004 or 4e-3); got '0x10'"],
    [["--lr", "1e"], "got '1e'"],
    [["--lr", ""], "got ''"],
    [["--lr", "NaN"], "got 'NaN'"],
    [["--lr", "Infinity"], "got 'Infinity'"],
    [["--lr", " 1"], "got ' 1'"],
    [["--epochs", "ten"], "--epochs must be a positive integer, written in decimal (like 128); got 'ten'"],
    [["--warmup_epochs", "-1"], "--warmup_epochs must be a number ≥ 0, got -1"],
    [["--mixup", "-1"], "--mixup must be a number ≥ 0 (Beta's α; 0 = off), got -1"],
    [["--reprob", "5"], "--reprob must be a number in [0, 1], got 5"],
    [["--smoothing", "1.5"], "--smoothing must be a number in [0, 1), got 1.5"],
    [["--ema_decay", "2"], "--ema_decay must be a number in [0, 1), got 2"],
    [["--train_limit", "-5"], "--train_limit must be 0 (the whole split) or a positive integer, got -5"],
    [["--eval_every", "0"], "--eval_every must be a positive integer, got 0"],
    [["--aa", "rand-bogus"], "got 'rand-bogus' (section 'bogus' is not a known letter key and number)"],
    [["--aa", "rnd-m9"], "(it must start with 'rand')"],
    [
      ["--distillation", "bogus"],
      "--distillation must be one of none, soft-cls, hard-cls, token-cls, token-dist",
    ],
    [
      ["--img_size", "13"],
      "--img_size 13 is not a multiple of the model deit_micro_patch7_28's patch size 7",
    ],
    [["--drop_path", "2"], "--drop_path must be a number in [0, 1), got 2"],
    [["--workers", "-1"], "--workers must be 0 (one per core) or a positive integer, got -1"],
    [["--loader_workers", "-3"], "--loader_workers must be an integer ≥ 0, got -3"],
    [["--seed", "1.5"], "--seed must be an integer in [0, 2147483647], got 1.5"],
    [
      ["--micro_batches", "-1"],
      "--micro_batches must be 0 (as many as the heap needs) or a positive integer",
    ],
    [["--opt", "lamb"], "--opt must be one of adamw, sgd, got 'lamb'"],
    [["--backend", "tpu"], "--backend must be one of auto, tensorflow, webgpu, wasm, cpu, got 'tpu'"],
    [["--model", "deit_micro_patch7"], "did you mean deit_micro_patch7_28?"],
    [["--teacher", "resnet"], "--teacher must be '' (none) or a registered model"],
    [["--dataset", "mnist"], "--dataset must be one of imagefolder, fashion-mnist"],
    [["--val_split", "val"], "--val_split must be a split of fashion-mnist (train, test), got 'val'"],
    [["--ema", "yes"], "--ema must be true or false, got 'yes'"],
    [["--subset_seed", "-2"], "--subset_seed must be -1 (the run's seed) or an integer in [0, 2147483647]"],
    [
      ["--distillation_alpha", "1.5"],
      "--distillation_alpha must be a number in [0, 1], or < 0 for the mode's",
    ],
    [["--batch_size", "33"], "--batch_size must be even with Mixup/CutMix on (mixup 0.8, cutmix 1), got 33"],
    [["--workers", "2", "--micro_batches", "3"], "--micro_batches 3 does not divide each engine's share"],
    [["--batch_size", "2", "--workers", "4"], "--batch_size 2 is smaller than the 4 engines (--workers)"],
    [
      ["--distillation", "token-both"],
      "needs a student with a distillation token, and deit_micro_patch7_28 has",
    ],
    [["--distillation", "hard-cls"], "--distillation hard-cls needs a teacher: set --teacher"],
    [["--learning_rate", "1"], "unknown config key 'learning_rate'"],
    [["--lr"], "--lr needs a value (a positive number)"],
  ];
  for (const [args, want] of cases) assertStringIncludes(flags(...args), want, args.join(" "));
  // What is fine stays fine: decimal and exponent forms, '' to turn RandAugment off, < 0 for α's default.
  for (
    const ok of [
      ["--lr", "4e-3"],
      ["--lr", ".5"],
      ["--lr", "1E+2"],
      ["--lr=0.001"],
      ["--aa", ""],
      ["--aa", "rand-m9-n2-mstd0.5-mmax10-inc1"],
      ["--distillation_alpha", "-1"],
      ["--ema"],
      ["--workers", "2", "--micro_batches", "4"],
      ["--batch_size", "33", "--mixup", "0", "--cutmix", "0"],
    ]
  ) {
    assertEquals(flags(...ok), "OK", ok.join(" "));
  }
});

Deno.test("config files and grid rows meet the same schema as flags, named by their source", async () => {
  assertThrows(
    () => checkPartial({ lr: "0.1" }, "x.ts"),
    ConfigError,
    `x.ts: lr must be a positive number, got "0.1"`,
  );
  assertThrows(
    () => checkPartial({ lr: NaN }, "x.ts"),
    ConfigError,
    "x.ts: lr must be a positive number, got NaN",
  );
  assertThrows(
    () => checkPartial({ reprob: 5 }, "x.ts"),
    ConfigError,
    "x.ts: reprob must be a number in [0, 1]",
  );
  assertThrows(() => resolveConfig({ img_size: 13 }, {}), ConfigError, "img_size 13 is not a multiple");
  // Every key's default meets its own rule.
  for (const k of Object.keys(SCHEMA) as (keyof TrainConfig)[]) {
    checkPartial({ [k]: DEFAULTS[k] }, "defaults");
  }
  assertEquals(Object.keys(SCHEMA).sort(), Object.keys(DEFAULTS).sort());

  const dir = await Deno.makeTempDir();
  try {
    const grid = (rows: string) =>
      `export default { description: "t", base: "fmnist-10k", rows: [${rows}] };`;
    await Deno.writeTextFile(`${dir}/bad_row.ts`, grid(`{ name: "a", overrides: { lr: -1 } }`));
    await assertRejects(
      () => loadGrid(`${dir}/bad_row.ts`),
      GridError,
      "row 'a': lr must be a positive number, got -1",
    );
    await Deno.writeTextFile(`${dir}/odd.ts`, grid(`{ name: "a", overrides: { batch_size: 33 } }`));
    await assertRejects(
      async () => expandGrid(await loadGrid(`${dir}/odd.ts`), { preset: "full" }),
      GridError,
      "row 'a': batch_size must be even with Mixup/CutMix on",
    );
    // A .ts config or grid that does not parse, or throws, is one line naming the file (and the line).
    await Deno.writeTextFile(`${dir}/syntax.ts`, `export default { description: "x", config: { lr: 1 \n`);
    await Deno.writeTextFile(`${dir}/throws.ts`, `throw new Error("boom");\nexport default {};\n`);
    const e1 = await assertRejects(
      () => loadConfigFile(`${dir}/syntax.ts`),
      ConfigError,
      "does not parse (line 1",
    );
    assert(!e1.message.includes("\n"), e1.message);
    await assertRejects(() => loadConfigFile(`${dir}/throws.ts`), ConfigError, "throws while it loads: boom");
    await assertRejects(() => loadGrid(`${dir}/syntax.ts`), GridError, "does not parse");
    await assertRejects(() => loadGrid(`${dir}/throws.ts`), GridError, "throws while it loads: boom");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every config in configs/ and every grid row (both presets) validates", async () => {
  for (const n of await listConfigs()) resolveConfig((await loadConfigFile(n)).config, {});
  const grids = await listGrids();
  assert(grids.length >= 5, grids.join(", "));
  for (const g of grids) {
    for (const preset of ["full", "smoke"] as const) {
      const runs = await expandGrid(await loadGrid(g), { preset });
      assert(runs.length > 0, `${g} ${preset}`);
    }
  }
});

Deno.test("the machine, the data and the run folder: cores, batch against data and memory, resume", () => {
  assertThrows(
    () => checkWorkers(64, 2),
    ConfigError,
    "--workers 64 asks for more engines than this machine's 2",
  );
  checkWorkers(64, 2, true);
  checkWorkers(0, 2);
  const c = resolveConfig(BASE, {});
  const shape = {
    workers: 2,
    backend: "wasm",
    epochSamples: 60000,
    trainName: "fashion-mnist/train",
    imgSize: 28,
    numClasses: 10,
  };
  assertThrows(
    () => checkRunFits({ ...c, batch_size: 100000 }, shape),
    ConfigError,
    "--batch_size 100000 exceeds the 60000 training images an epoch of fashion-mnist/train holds",
  );
  assertThrows(
    () => checkRunFits({ ...c, batch_size: 4096 }, { ...shape, hostBytes: 2 ** 26 }),
    ConfigError,
    "--batch_size 4096 does not fit in memory",
  );
  // An explicit micro-batch that does not fit the wasm heap is the out-of-memory message before any step.
  assertThrows(
    () =>
      checkRunFits({ ...DEFAULTS, micro_batches: 1 }, {
        ...shape,
        workers: 1,
        epochSamples: 10 ** 6,
        imgSize: 224,
        numClasses: 1000,
      }),
    OutOfMemoryError,
    "does not fit in the wasm heap",
  );
  checkRunFits(c, shape);

  const saved = { ...c } as Record<string, unknown>;
  assertThrows(
    () => checkResume("runs/x", saved, { ...c, batch_size: 64, seed: 3 }),
    ConfigError,
    "cannot resume runs/x with another batch_size (the run has 128, now 64), seed (the run has 0, now 3)",
  );
  checkResume("runs/x", saved, { ...c, workers: 1, loader_workers: 0, checkpoint_minutes: 1 });
  // A key added since the run started is no change while it keeps its default.
  const { subset_seed: _, ...older } = saved;
  checkResume("runs/x", older, c);
});

const fakeData = (n: number, classes = 3): Dataset => ({
  name: "fake",
  classes: Array.from({ length: classes }, (_, i) => `c${i}`),
  length: n,
  get: (i: number) =>
    Promise.resolve({
      image: { data: new Uint8Array(8 * 8 * 3).fill(i), width: 8, height: 8, channels: 3 as const },
      label: i % classes,
    }),
});

Deno.test("NaN or infinite logits are never hits, and they stop a training run's evaluation", async () => {
  const row = (...v: number[]) => Float32Array.from(v);
  assertEquals(scoreRow(row(NaN, NaN, NaN), 0).top1, false);
  assertEquals(scoreRow(row(1, NaN, 0), 0).top5, false);
  assertEquals(scoreRow(row(Infinity, 0, 0), 0).top1, false);
  assert(Number.isNaN(scoreRow(row(NaN, 1, 2), 2).loss));
  const good = scoreRow(row(0, 1, 2), 2);
  assert(good.top1 && good.top5 && Math.abs(good.loss - (Math.log(1 + Math.E + Math.E ** 2) - 2)) < 1e-6);

  const nan = (x: Float32Array, s: number[]) => Promise.resolve(new Float32Array(s[0] * 3).fill(NaN + x[0]));
  await assertRejects(
    () => evaluateDataset(fakeData(6), 8, 4, nan),
    DivergedError,
    "training diverged; lower --lr",
  );
  const m = await evaluateDataset(fakeData(6), 8, 4, nan, { allowNonFinite: true });
  assertEquals([m.acc1, m.acc5, m.nonFinite], [0, 0, 6]);
  assert(Number.isNaN(m.loss));
  // A model that always says class 0: a third right.
  const zero = (_: Float32Array, s: number[]) =>
    Promise.resolve(Float32Array.from({ length: s[0] * 3 }, (_, i) => (i % 3 === 0 ? 1 : 0)));
  const z = await evaluateDataset(fakeData(6), 8, 4, zero);
  assertEquals([z.acc1, z.acc5, z.nonFinite], [100 / 3, 100, undefined]);
});

Deno.test("deno task eval's evaluation counts NaN outputs wrong", async () => {
  await useBackend("cpu");
  const dir = await Deno.makeTempDir();
  try {
    for (const cls of ["a", "b"]) {
      await Deno.mkdir(`${dir}/${cls}`);
      const px = new Uint8Array(8 * 8 * 3).fill(cls === "a" ? 10 : 200);
      await Deno.writeFile(
        `${dir}/${cls}/0.png`,
        await sharp(px, { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer(),
      );
    }
    const folder = await scanImageFolder(dir);
    const model = { predict: (x: tf.Tensor4D) => tf.fill([x.shape[0], 2], NaN) as tf.Tensor2D };
    const r = await evaluate(model, folder.samples, { size: 8, progress: false });
    assertEquals([r.top1, r.top5, r.nonFinite, r.count], [0, 0, 2, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file-system errors are expected errors (one line), other errors are bugs (a stack)", () => {
  assert(isExpectedError(new Deno.errors.NotFound("No such file or directory (os error 2): open '/x'")));
  assert(isExpectedError(new Error("No space left on device (os error 28)")));
  assert(isExpectedError(new ConfigError("x")));
  assert(isExpectedError(new DivergedError("x")));
  assert(isExpectedError(new RunNotFoundError("x")));
  assert(isExpectedError(new TeacherMatchError("x")));
  assert(!isExpectedError(new TypeError("Cannot read properties of undefined (reading 'dispose')")));
  assert(!isExpectedError(new RangeError("bad")));
});

// ---- Real spawns: one line on stderr, exit code 2, no stack, nothing written.

const dec = new TextDecoder();

async function spawn(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  // Not ours: what a headless machine's graphics stack prints when the backend is probed, and Deno's note when
  // processes started together wait for the node_modules lock.
  const noise = /XDG_RUNTIME_DIR|^Blocking waiting for file lock/;
  const lines = dec.decode(out.stderr).split("\n").filter((l) => l.trim() && !noise.test(l));
  return { code: out.code, lines };
}

/** Exit code 2, no stack trace, and the error is one line that says `want` (other lines only with `progress`). */
function assertOneLine(r: { code: number; lines: string[] }, want: string, progress = false) {
  const text = r.lines.join("\n");
  assertEquals(r.code, 2, text);
  assert(!r.lines.some((l) => /^\s+at /.test(l)), `stack trace printed:\n${text}`);
  const errors = r.lines.filter((l) => l.startsWith("error: "));
  assertEquals(errors.length, 1, text);
  if (!progress) assertEquals(r.lines.length, 1, text);
  assertStringIncludes(errors[0], want);
}

Deno.test("train, eval and match-teachers: bad flags, configs, paths and resumes are one line each (real spawns)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/syntax.ts`, `export default { description: "x", config: { lr: 1 \n`);
    await Deno.writeTextFile(`${dir}/a-file`, "keep me");
    // A run folder to resume, started with batch 128 and seed 0 (its checkpoint is never read: refused first).
    await Deno.mkdir(`${dir}/run`);
    const started = resolveConfig(BASE, {});
    await Deno.writeTextFile(`${dir}/run/config.json`, JSON.stringify({ config: started }));
    await Deno.writeTextFile(`${dir}/run/checkpoint-last.safetensors`, "x");
    const train = (...a: string[]) => spawn(TRAIN, a);
    const cores = navigator.hardwareConcurrency;
    const [lr, syntax, file, proc, workers, resume, predictions, match] = await Promise.all([
      train("--config", "fmnist-10k", "--smoke", "--lr", "0x10"),
      train("--config", `${dir}/syntax.ts`, "--smoke"),
      train("--config", "fmnist-10k", "--smoke", "--out", `${dir}/a-file`),
      train("--config", "fmnist-10k", "--smoke", "--out", "/proc/deit-test/run"),
      train("--config", "fmnist-10k", "--smoke", "--workers", String(cores + 1)),
      train("--config", "fmnist-10k", "--out", `${dir}/run`, "--resume", "--batch_size", "64", "--seed", "1"),
      spawn(EVAL, [
        "--model",
        "deit_tiny_patch16_224",
        "--checkpoint",
        "x.pth",
        "--data",
        dir,
        "--predictions",
        "/nonexistent/dir/p.jsonl",
      ]),
      spawn(MATCH, ["--root", `${dir}/none`]),
    ]);
    assertOneLine(lr, "--lr must be a positive number, written in decimal (like 0.004 or 4e-3); got '0x10'");
    assertOneLine(syntax, "syntax.ts does not parse (line 1");
    assertOneLine(file, `--out ${dir}/a-file: is a file, not a folder`);
    assertOneLine(proc, "--out /proc/deit-test/run: cannot write in /proc");
    assertOneLine(workers, `--workers ${cores + 1} asks for more engines than this machine's ${cores} cores`);
    assertOneLine(resume, "cannot resume");
    assertStringIncludes(
      resume.lines[0],
      "batch_size (the run has 128, now 64), seed (the run has 0, now 1)",
    );
    assertOneLine(
      predictions,
      "--predictions /nonexistent/dir/p.jsonl: the folder /nonexistent/dir does not exist",
    );
    assertOneLine(match, `${dir}/none/claims/teacher-regnet: no run there`);
    // Nothing written or lost.
    assertEquals(await Deno.readTextFile(`${dir}/a-file`), "keep me");
    assertEquals(await Deno.readTextFile(`${dir}/run/checkpoint-last.safetensors`), "x");
    assertEquals([...Deno.readDirSync(`${dir}/run`)].map((e) => e.name).sort(), [
      "checkpoint-last.safetensors",
      "config.json",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "train: a batch larger than the data is one line; a diverged run stops and is never logged or kept as best",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const [big, div] = await Promise.all([
        spawn(TRAIN, ["--config", "fmnist-10k", "--smoke", "--out", `${dir}/big`, "--batch_size", "100000"]),
        spawn(TRAIN, ["--config", "fmnist-10k", "--smoke", "--out", `${dir}/div`, "--lr", "1e9"]),
      ]);
      assertOneLine(
        big,
        "--batch_size 100000 exceeds the 60000 training images an epoch of fashion-mnist/train",
      );
      // lr 1e9: the last step's update leaves NaN weights; the evaluation stops the run (it used to log 100%).
      assertOneLine(div, "training diverged", true);
      const log = await Deno.readTextFile(`${dir}/div/log.jsonl`).catch(() => "");
      assertEquals(log.trim(), "", "a diverged epoch was logged");
      assert(!(await Deno.stat(`${dir}/div/checkpoint-best.safetensors`).then(() => true, () => false)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("evaluation of a run leaves unreadable images out and counts them; none readable is an error", async () => {
  const { evaluateDataset } = await import("../lib/train/evaluate.ts");
  const { DataError } = await import("../lib/data/dataset.ts");
  const image = { width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3).fill(128) };
  const data = {
    name: "fake",
    classes: ["a", "b"],
    length: 5,
    get: (i: number) =>
      i === 1 || i === 3
        ? Promise.reject(new DataError(`x${i}.jpg: not an image`))
        : Promise.resolve({ image, label: i % 2 }),
  };
  // Class 0 always wins: images 0, 2, 4 (label 0) are hits; 1 and 3 cannot be read.
  const predict = (_x: Float32Array, shape: number[]) =>
    Promise.resolve(Float32Array.from({ length: shape[0] * 2 }, (_, k) => (k % 2 === 0 ? 1 : 0)));
  const m = await evaluateDataset(data as never, 8, 2, predict);
  assertEquals([m.count, m.unreadable, m.acc1], [3, 2, 100]);
  const none = { ...data, get: () => Promise.reject(new DataError("not an image")) };
  await assertRejects(() => evaluateDataset(none as never, 8, 2, predict), DataError, "none of its 5 images");
});
