/**
 * Training runs end to end on a tiny slice of Fashion-MNIST: config errors are clear; a run killed mid-way and
 * resumed logs exactly what an uninterrupted run logs; the run folder holds config.json, log.jsonl and
 * checkpoints that `deno task eval`'s loader reads.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { ConfigError, DEFAULTS, parseOverrides, resolveConfig } from "../lib/train/config.ts";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { readRunLog, tinyRunConfig, trainProcess } from "./helpers.ts";

const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);

const tiny = tinyRunConfig({ workers: 2 });

const train = (args: string[]) => trainProcess(args);

/** Start a run and SIGKILL it as soon as `ready()` (polled every 50 ms, 30 s at most). */
async function killWhen(args: string[], ready: () => Promise<boolean>) {
  const child = train(args).spawn();
  for (let i = 0; i < 600 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 50));
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

const readLog = readRunLog;

Deno.test("config: unknown and mistyped keys are errors naming the key; overrides keep types", () => {
  assertThrows(
    () => parseOverrides(["--learning_rate", "1"]),
    ConfigError,
    "unknown config key 'learning_rate'",
  );
  assertThrows(() => parseOverrides(["--epochs", "ten"]), ConfigError, "--epochs must be a positive integer");
  assertThrows(() => parseOverrides(["--opt", "lamb"]), ConfigError, "--opt must be one of adamw, sgd");
  assertThrows(() => resolveConfig({ epoch: 3 } as never, {}), ConfigError, "did you mean epochs");
  const c = resolveConfig({ epochs: 3 }, parseOverrides(["--lr=0.001", "--ema", "--aa", ""]));
  assertEquals([c.epochs, c.lr, c.ema, c.aa, c.batch_size], [3, 0.001, true, "", DEFAULTS.batch_size]);
  assert(Object.isFrozen(c));
});

Deno.test({
  name: "a run killed mid-way and resumed logs exactly what an uninterrupted run logs",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/tiny.json`, JSON.stringify(tiny));
    const full = await train(["--config", `${dir}/tiny.json`, "--out", `${dir}/full`]).output();
    assertEquals(full.code, 0, new TextDecoder().decode(full.stderr));
    const want = await readLog(`${dir}/full`);
    assertEquals(want.length, 3);
    assert(want[2].finished);

    // Kill a run twice — once mid-epoch (a checkpoint after every step: checkpoint_minutes 0), once right after
    // an epoch is logged — resuming each time; the log must equal the uninterrupted one.
    const cut = ["--config", `${dir}/tiny.json`, "--out", `${dir}/cut`, "--checkpoint_minutes", "0"];
    const logText = () => Deno.readTextFile(`${dir}/cut/log.jsonl`).catch(() => "");
    await killWhen(
      cut,
      () => exists(`${dir}/cut/checkpoint-last.safetensors`),
    );
    assertEquals((await logText()).trim(), "", "the first kill should land inside epoch 0");
    await killWhen([...cut, "--resume"], async () => (await logText()).trim().length > 0);
    assert((await readLog(`${dir}/cut`)).length < 3, "the run finished before it could be killed");
    const resumed = await train([...cut, "--resume"]).output();
    assertEquals(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    const got = await readLog(`${dir}/cut`);
    assertEquals(got.length, 3);
    for (let e = 0; e < 3; e++) {
      for (const k of ["lr", "train_loss", "test_loss", "test_acc1", "test_acc5", "steps"]) {
        assertEquals(got[e][k], want[e][k], `epoch ${e} ${k}`);
      }
    }
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/cut/config.json`));
    assertEquals(cfg.config.model, "deit_mini_patch4_28");
    assertEquals(cfg.derived.steps_per_epoch, 3);
    for (const f of ["checkpoint-last.safetensors", "checkpoint-best.safetensors"]) {
      await Deno.stat(`${dir}/cut/${f}`);
    }
    // Starting again without --resume refuses to overwrite the run.
    const again = await train(["--config", `${dir}/tiny.json`, "--out", `${dir}/cut`]).output();
    assertEquals(again.code, 2);
    assert(new TextDecoder().decode(again.stderr).includes("--resume"));
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("train: a missing config and an unknown key are one-line errors", async () => {
  const r1 = await train(["--config", "no-such-config"]).output();
  assertEquals(r1.code, 2);
  assert(new TextDecoder().decode(r1.stderr).includes("no config 'no-such-config'"));
  const r2 = await train(["--config", "fmnist-deit", "--smoke", "--batchsize", "8"]).output();
  assertEquals(r2.code, 2);
  assert(
    new TextDecoder().decode(r2.stderr).includes("unknown config key 'batchsize' (did you mean batch_size?)"),
  );
  await assertRejects(() => Promise.reject(new ConfigError("x")), ConfigError);
});

Deno.test("every config in configs/ loads, resolves, names a registered model and a known dataset split", async () => {
  const { listConfigs, loadConfigFile } = await import("../lib/train/config.ts");
  const { getEntry } = await import("../lib/models/registry.ts");
  const { DATASET_SPLITS } = await import("../lib/data/datasets/mod.ts");
  const names = await listConfigs();
  assert(names.length >= 13, names.join(", "));
  for (const n of names) {
    const f = await loadConfigFile(n);
    assert(f.description.length > 0, `${n}: no description`);
    const c = resolveConfig(f.config, {});
    getEntry(c.model);
    const splits = (DATASET_SPLITS as Record<string, readonly string[] | null>)[c.dataset];
    assert(splits !== undefined, `${n}: unknown dataset ${c.dataset}`);
    if (splits) {
      for (const s of [c.train_split, c.val_split]) {
        assert(splits.includes(s), `${n}: ${c.dataset} has no split ${s}`);
      }
    }
  }
});

Deno.test({
  name: "train --smoke works for a RegNet student (the convnet teacher config)",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const r = await train([
      "--config",
      "fmnist-regnet",
      "--smoke",
      "--out",
      dir,
      "--batch_size",
      "16",
      "--model",
      "regnety_mini",
    ]).output();
    assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    const log = await readLog(dir);
    assertEquals(log.length, 1);
    assert(Number.isFinite(log[0].test_acc1));
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "a NaN loss stops the run with one clear line",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const r = await train([
      "--config",
      "fmnist-deit",
      "--smoke",
      "--out",
      dir,
      "--batch_size",
      "16",
      "--lr",
      "1e30",
      "--warmup_epochs",
      "0",
    ]).output();
    assertEquals(r.code, 2);
    const err = new TextDecoder().decode(r.stderr);
    assert(/loss is (NaN|-?Infinity) at epoch 0, step \d+: training diverged/.test(err), err);
    assert(!err.includes("    at "), "stack trace printed");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "a run killed before its first evaluation resumes (no best accuracy yet is stored as null)",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const cfg = { ...tiny, config: { ...tiny.config, epochs: 2, eval_every: 2, workers: 1 } };
    await Deno.writeTextFile(`${dir}/tiny.json`, JSON.stringify(cfg));
    const args = ["--config", `${dir}/tiny.json`, "--out", `${dir}/run`, "--checkpoint_minutes", "0"];
    await killWhen(args, () => exists(`${dir}/run/checkpoint-last.safetensors`));
    const resumed = await train([...args, "--resume"]).output();
    assertEquals(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    const log = await readLog(`${dir}/run`);
    assertEquals(log.length, 2);
    assertEquals(log[0].test_acc1, null); // not evaluated
    assert(log[1].test_acc1 >= 0 && log[1].finished);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "a RegNet run (BatchNorm statistics) killed after an epoch resumes",
  ignore: !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const cfg = {
      description: "tiny RegNet (test)",
      config: {
        ...tiny.config,
        model: "regnety_002",
        img_size: 28,
        workers: 1,
        epochs: 2,
        aa: "",
        mixup: 0,
        cutmix: 0,
      },
    };
    await Deno.writeTextFile(`${dir}/r.json`, JSON.stringify(cfg));
    const args = ["--config", `${dir}/r.json`, "--out", `${dir}/run`];
    await killWhen(
      args,
      async () => (await Deno.readTextFile(`${dir}/run/log.jsonl`).catch(() => "")).trim() !== "",
    );
    const r = await train([...args, "--resume"]).output();
    assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    assertEquals((await readLog(`${dir}/run`)).map((l) => l.epoch), [0, 1]);
    await Deno.remove(dir, { recursive: true });
  },
});
