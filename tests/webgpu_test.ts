/**
 * WebGPU end to end (where an adapter exists — in CI Mesa's software Vulkan adapter, lavapipe): training steps
 * equal wasm's, and `train`, `eval` and `bench` run with `--backend webgpu`. The reference fixtures' logits,
 * features and gradients on WebGPU are in vit_parity_test.ts and regnet_test.ts. Everything is small: lavapipe
 * computes correctly but slowly, and compiles each shader on first use.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { loadCheckpoint, saveSafetensors } from "../lib/io/checkpoint.ts";
import { buildModel } from "../lib/models/registry.ts";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { FIXTURES, NO_WEBGPU, relErr, trainTiny, useBackend, WEBGPU } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

const ignore = !WEBGPU;
const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);
const ROOT = fromFileUrl(new URL("../", import.meta.url));

async function task(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}${script}`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

if (ignore) console.error(`webgpu_test: skipped — ${NO_WEBGPU}`);

Deno.test({
  name: "5 AdamW steps on webgpu equal wasm's (losses and weights)",
  ignore,
  fn: async () => {
    await useBackend("wasm");
    const ref = await trainTiny(5);
    await useBackend("webgpu");
    const got = await trainTiny(5);
    const e = relErr(got.losses, ref.losses), w = relErr(got.weights, ref.weights);
    assert(e < 1e-5, `losses ${got.losses} vs ${ref.losses}: ${e.toExponential(2)}`);
    assert(w < 1e-4, `weights after 5 steps: relative error ${w.toExponential(2)}`);
  },
});

Deno.test({
  name: "checkpoints save from and load into a model on webgpu unchanged",
  ignore,
  fn: async () => {
    await useBackend("webgpu");
    const m = buildModel("deit_mini_distilled_patch8_32", {}, 0);
    await loadCheckpoint(m, FIXTURES + "vit_mini_distilled.safetensors");
    const dir = await Deno.makeTempDir();
    await saveSafetensors(m, `${dir}/w.safetensors`);
    const back = buildModel("deit_mini_distilled_patch8_32", {}, 1);
    await loadCheckpoint(back, `${dir}/w.safetensors`);
    for (const [k, v] of m.params) {
      assertEquals(await back.params.get(k)!.data(), await v.data(), k);
    }
    m.dispose();
    back.dispose();
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "train --smoke --backend webgpu (with clipping and EMA), then eval and bench on webgpu",
  ignore: ignore || !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const t = await task("scripts/train.ts", [
      "--config=fmnist-10k",
      "--smoke",
      "--backend=webgpu",
      "--batch_size=16",
      "--clip_grad=1",
      "--ema=true",
      "--ema_decay=0.9",
      `--out=${dir}/run`,
    ]);
    assertEquals(t.code, 0, t.stderr);
    assert(t.stderr.includes("webgpu × 1 engines"), t.stderr);
    const log = (await Deno.readTextFile(`${dir}/run/log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(log.length, 1);
    assert(Number.isFinite(log[0].train_loss) && log[0].train_loss > 0, JSON.stringify(log[0]));
    assert(Number.isFinite(log[0].test_acc1), JSON.stringify(log[0]));
    // Two engines on the GPU (gradients exchanged through the host, as for CPU engines).
    const two = await task("scripts/train.ts", [
      "--config=fmnist-10k",
      "--smoke",
      "--backend=webgpu",
      "--batch_size=16",
      "--workers=2",
      `--out=${dir}/run2`,
    ]);
    assertEquals(two.code, 0, two.stderr);
    assert(two.stderr.includes("webgpu × 2 engines"), two.stderr);

    // eval through its own path on a folder of Fashion-MNIST-sized images: the same numbers as on cpu.
    const data = `${dir}/images`;
    for (const cls of ["a", "b"]) {
      await Deno.mkdir(`${data}/${cls}`, { recursive: true });
      for (let i = 0; i < 3; i++) {
        const px = Uint8Array.from(
          { length: 28 * 28 * 3 },
          (_, j) => (j * (i + 3) + cls.charCodeAt(0)) % 256,
        );
        const { default: sharp } = await import("sharp");
        await Deno.writeFile(
          `${data}/${cls}/${i}.png`,
          await sharp(px, { raw: { width: 28, height: 28, channels: 3 } }).png().toBuffer(),
        );
      }
    }
    const evalArgs = (backend: string) => [
      "--model=deit_micro_patch7_28",
      `--checkpoint=${dir}/run/checkpoint-last.safetensors`,
      `--data=${data}`,
      `--backend=${backend}`,
      `--predictions=${dir}/pred-${backend}.jsonl`,
    ];
    const g = await task("scripts/eval.ts", evalArgs("webgpu"));
    assertEquals(g.code, 0, g.stderr);
    const c = await task("scripts/eval.ts", evalArgs("cpu"));
    assertEquals(c.code, 0, c.stderr);
    const preds = async (b: string) =>
      (await Deno.readTextFile(`${dir}/pred-${b}.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l).top5[0]
      );
    assertEquals(await preds("webgpu"), await preds("cpu"));

    const b = await task("bench/bench.ts", [
      "--model=deit_micro_patch7_28",
      "--mode=train",
      "--batch-size=8",
      "--backend=webgpu",
      "--runs=2",
      "--warmup=1",
      "--json",
    ]);
    assertEquals(b.code, 0, b.stderr);
    const r = JSON.parse(b.stdout);
    assertEquals(r.backend, "webgpu");
    assert(r.images_per_s > 0, b.stdout);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "tensors do not leak from a webgpu training step",
  ignore,
  fn: async () => {
    await useBackend("webgpu");
    await trainTiny(1);
    const before = tf.memory().numTensors;
    await trainTiny(2);
    assertEquals(tf.memory().numTensors, before);
  },
});

Deno.test({
  name: "a sweep trains on webgpu (a 1-row grid whose config says backend webgpu)",
  ignore: ignore || !haveFmnist,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const grid = {
      description: "one tiny run on WebGPU (test)",
      base: "fmnist-10k",
      overrides: {
        backend: "webgpu",
        train_limit: 32,
        eval_limit: 32,
        epochs: 1,
        warmup_epochs: 1,
        batch_size: 16,
      },
      rows: [{ name: "gpu" }],
    };
    await Deno.writeTextFile(`${dir}/gpu.json`, JSON.stringify(grid));
    const r = await task("scripts/sweep.ts", [
      "--grid",
      `${dir}/gpu.json`,
      "--root",
      `${dir}/runs`,
      "--devices",
      "cpu:2",
    ]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/runs/gpu/gpu/config.json`));
    assertEquals(cfg.derived.backend, "webgpu");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "the notebooks' analyses run on webgpu: token similarity, agreement, attention rollout",
  ignore,
  fn: async () => {
    const { agreement, attentionRollout, tokenSimilarity } = await import("../lib/distill/analysis.ts");
    await useBackend("webgpu");
    const m = buildModel("deit_mini_distilled_patch8_32", {}, 4);
    const x = tf.randomNormal([3, 32, 32, 3], 0, 1, "float32", 2) as tf.Tensor4D;
    const s = await tokenSimilarity(m, x);
    assertEquals(s.blocks.length, 2);
    assertEquals((await agreement(m, { predict: (z) => m.predict(z) }, x)).both, 1);
    const r = await attentionRollout(m, x);
    assertEquals([r.grid, r.cls.length, r.dist!.length], [4, 3, 3]);
    x.dispose();
    m.dispose();
  },
});
