/**
 * RegNetY teachers: parity with timm on the reference fixture (cpu and wasm), timm's parameter counts, every
 * registered RegNet builds, the grouped convolution and BatchNorm ops against tf's own formulation (values and
 * gradients), BatchNorm running statistics, training on wasm, and checkpoints round-tripping with buffers.
 */
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { buildModel, modelConfig, modelNames, regnetConfig, summarize } from "../lib/models/registry.ts";
import { loadCheckpoint, saveSafetensors } from "../lib/io/checkpoint.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import {
  batchNormTrain,
  conv2d,
  conv2dInference,
  type ConvOptions,
  globalAvgPool,
  referenceConv2d,
} from "../lib/regnet/conv.ts";
import { RegNet, regnetStages } from "../lib/regnet/model.ts";
import { AdamW } from "../lib/train/optim.ts";
import { evalTransform } from "../lib/data/transforms/eval.ts";
import {
  fixture,
  FIXTURES,
  GPU_BACKENDS,
  nchwToNhwc,
  PARITY_BACKENDS,
  relErr,
  useBackend,
} from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  const e = relErr(got, want);
  assert(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

const hasNaN = (t: tf.Tensor) => tf.tidy(() => tf.any(tf.isNaN(t)).dataSync()[0]) === 1;

// --- parity with timm ----------------------------------------------------------------------------------------

for (const backend of [...PARITY_BACKENDS, ...GPU_BACKENDS]) {
  Deno.test(`regnety_mini eval logits match timm [${backend}]`, async () => {
    await useBackend(backend);
    const model = buildModel("regnety_mini");
    const report = await loadCheckpoint(model, FIXTURES + "regnety_mini.safetensors");
    // Every parameter and running statistic; the fixture has no num_batches_tracked (torch tolerates that).
    assertEquals(report.loaded, model.params.size + model.buffers.size - model.optionalKeys.size);
    const c = await fixture("regnety_mini_case.safetensors");
    const input = c.get("input")!;
    const x = nchwToNhwc(input.data as Float32Array, input.shape);
    const before = tf.memory().numTensors;
    // predict: the fused inference kernels; forward in eval mode: the differentiable ops. Both must match.
    const logits = model.predict(x);
    const evalForward = model.forward(x, { training: false }).cls;
    assertEquals(logits.shape, [2, 10]);
    for (const [what, t] of [["predict", logits], ["forward(eval)", evalForward]] as const) {
      const e = relErr(await t.data(), c.get("eval_logits")!.data);
      console.log(`  regnety_mini ${what}, ${backend}: relative error ${e.toExponential(2)}`);
      assert(e < 1e-4, `${what} eval_logits: relative error ${e.toExponential(2)}`);
    }
    tf.dispose([logits, evalForward]);
    assertEquals(tf.memory().numTensors, before, "predict/forward leaked tensors");
    x.dispose();
    model.dispose();
  });
}

// --- the generator and the registry ---------------------------------------------------------------------------

Deno.test("registry: timm's parameter counts, stage widths and the Table 2 figures", () => {
  assertEquals(summarize("regnety_002").params, 3_162_996);
  assertEquals(summarize("regnety_160").params, 83_590_140);
  // timm / pycls stage widths and depths.
  const stages = (n: string) => regnetStages(regnetConfig(n)).map((s) => [s.width, s.depth]);
  assertEquals(stages("regnety_002"), [[24, 1], [56, 1], [152, 4], [368, 7]]);
  assertEquals(stages("regnety_160"), [[224, 2], [448, 4], [1232, 11], [3024, 1]]);
  assertEquals(stages("regnety_mini"), [[8, 1], [16, 1], [32, 3], [64, 1]]);
  // Multiply-adds at 224 as the names say: 200 MF … 16 GF.
  assertAlmostEquals(summarize("regnety_002").gflops, 0.2, 0.03);
  assertAlmostEquals(summarize("regnety_040").gflops, 4.0, 0.2);
  assertAlmostEquals(summarize("regnety_160").gflops, 16.0, 0.5);
  assertEquals(summarize("regnety_160").img_size, 224);
  assertEquals(summarize("regnety_mini").img_size, 32);
  assertEquals(summarize("regnety_160").paper_top1, 82.9);
  assertEquals(summarize("regnety_040").paper_top1, 80.0);
  assert(modelNames("regnet").length >= 12);
  assertThrows(() => modelConfig("regnety_160"), Error, "regnetConfig");
  assertThrows(() => regnetConfig("deit_tiny_patch16_224"), Error, "not a RegNet");
});

/** The three largest (39–84 M parameters) take 3–8 s each to initialise; REGNET_BUILD_ALL=1 builds them too. */
const BUILD_ALL = Deno.env.get("REGNET_BUILD_ALL") === "1";
const quick = (name: string) => summarize(name).params < 35e6;

for (const name of modelNames("regnet")) {
  Deno.test({
    name: `${name}: builds with timm's parameter count, [2, classes] logits at 32×32 in both modes, no NaN`,
    ignore: !BUILD_ALL && !quick(name),
    fn: async () => {
      await useBackend("wasm");
      const model = buildModel(name);
      assert(model instanceof RegNet);
      assertEquals(model.numParams, summarize(name).params);
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 1) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      for (const training of [false, true]) {
        const { cls } = model.forward(x, { training });
        assertEquals(cls.shape, [2, model.config.numClasses]);
        assert(!hasNaN(cls), `NaN in ${training ? "training" : "eval"} logits`);
        cls.dispose();
      }
      assertEquals(tf.memory().numTensors, before, "forward leaked tensors");
      x.dispose();
      model.dispose();
    },
  });
}

// --- the ops ----------------------------------------------------------------------------------------------------

interface ConvCase extends ConvOptions {
  B: number;
  H: number;
  W: number;
  C: number;
  Co: number;
  k: number;
}

const CASES: ConvCase[] = [
  { B: 2, H: 8, W: 8, C: 12, Co: 12, k: 3, stride: 1, pad: 1, groups: 3 },
  { B: 2, H: 9, W: 7, C: 16, Co: 16, k: 3, stride: 2, pad: 1, groups: 4 }, // odd sizes, stride 2
  { B: 3, H: 8, W: 8, C: 16, Co: 24, k: 3, stride: 2, pad: 1, groups: 8 }, // Co ≠ C
  { B: 2, H: 10, W: 10, C: 3, Co: 8, k: 3, stride: 2, pad: 1, groups: 1 }, // the stem
  { B: 2, H: 6, W: 6, C: 8, Co: 8, k: 3, stride: 1, pad: 1, groups: 8 }, // depthwise
  { B: 2, H: 7, W: 7, C: 6, Co: 10, k: 1, stride: 2, pad: 0, groups: 1 }, // a downsample shortcut
  { B: 2, H: 5, W: 5, C: 6, Co: 4, k: 1, stride: 1, pad: 0, groups: 1 },
];

const caseName = (c: ConvCase) => `${c.H}×${c.W}×${c.C}→${c.Co}, k${c.k} s${c.stride} p${c.pad} g${c.groups}`;

/** Value and gradients (x, W) of Σ y·r for one convolution implementation, as host arrays (seed ≠ 0: tf
 * treats seed 0 as "unseeded"). */
function convAndGrads(c: ConvCase, impl: typeof conv2d, seed: number) {
  return tf.tidy(() => {
    const x = tf.randomNormal([c.B, c.H, c.W, c.C], 0, 1, "float32", seed) as tf.Tensor4D;
    const w = tf.randomNormal([c.k, c.k, c.C / c.groups!, c.Co], 0, 1, "float32", seed + 1) as tf.Tensor4D;
    const y0 = impl(x, w, c);
    const r = tf.randomNormal(y0.shape, 0, 1, "float32", seed + 2);
    const [dx, dw] = tf.grads((x, w) => tf.sum(tf.mul(impl(x as tf.Tensor4D, w as tf.Tensor4D, c), r)))([
      x,
      w,
    ]);
    return {
      y: y0.dataSync().slice(),
      shape: y0.shape,
      dx: dx.dataSync().slice(),
      dw: dw.dataSync().slice(),
    };
  });
}

const IMPLS = ["split", "blockDiagonal"] as const;

Deno.test("grouped conv2d: values and gradients equal per-group tf.conv2d with tf's gradients [cpu]", async () => {
  await useBackend("cpu");
  for (const [i, c0] of CASES.flatMap((c) => IMPLS.map((groupedImpl) => ({ ...c, groupedImpl }))).entries()) {
    const c = c0 as ConvCase;
    const want = convAndGrads(c, referenceConv2d, 10 * i + 1);
    const got = convAndGrads(c, conv2d, 10 * i + 1);
    const Ho = Math.floor((c.H + 2 * c.pad! - c.k) / c.stride!) + 1;
    assertEquals(
      got.shape,
      [c.B, Ho, Math.floor((c.W + 2 * c.pad! - c.k) / c.stride!) + 1, c.Co],
      caseName(c),
    );
    assertEquals(got.shape, want.shape, caseName(c));
    close(`y ${caseName(c)}`, got.y, want.y, 1e-5);
    close(`dx ${caseName(c)}`, got.dx, want.dx, 1e-5);
    close(`dW ${caseName(c)}`, got.dw, want.dw, 1e-5);
  }
});

Deno.test("grouped conv2d trains on wasm (no Conv2DBackpropFilter there): same gradients as on cpu", async () => {
  await useBackend("cpu");
  const want = CASES.map((c, i) => convAndGrads(c, referenceConv2d, 10 * i + 1));
  await useBackend("wasm");
  for (const groupedImpl of IMPLS) {
    for (const [i, c0] of CASES.entries()) {
      const c = { ...c0, groupedImpl };
      const got = convAndGrads(c, conv2d, 10 * i + 1);
      close(`y ${caseName(c)}`, got.y, want[i].y, 1e-5);
      close(`dx ${caseName(c)}`, got.dx, want[i].dx, 1e-5);
      close(`dW ${caseName(c)}`, got.dw, want[i].dw, 1e-5);
    }
  }
});

Deno.test("conv2dInference (fused, per group or block-diagonal) equals conv + bias + ReLU", async () => {
  for (const backend of PARITY_BACKENDS) {
    await useBackend(backend);
    for (const [i, c] of CASES.entries()) {
      for (const groupedImpl of IMPLS) {
        const [got, want] = tf.tidy(() => {
          const x = tf.randomNormal([c.B, c.H, c.W, c.C], 0, 1, "float32", i + 1) as tf.Tensor4D;
          const w = tf.randomNormal([c.k, c.k, c.C / c.groups!, c.Co], 0, 1, "float32", i + 2) as tf.Tensor4D;
          const b = tf.randomNormal([c.Co], 0, 1, "float32", i + 3) as tf.Tensor1D;
          const o = { ...c, groupedImpl };
          return [conv2dInference(x, w, o, b, true), tf.relu(tf.add(referenceConv2d(x, w, c), b))].map((t) =>
            t.dataSync().slice()
          );
        });
        close(`${caseName(c)} ${groupedImpl} [${backend}]`, got, want, 1e-5);
      }
    }
  }
});

Deno.test("batchNormTrain: value and gradients equal tf autodiff of the textbook formula", async () => {
  for (const backend of PARITY_BACKENDS) {
    await useBackend(backend);
    const run = (bn: (x: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor4D) =>
      tf.tidy(() => {
        const x = tf.add(tf.mul(tf.randomNormal([3, 4, 5, 6], 0, 1, "float32", 1), 3), 1) as tf.Tensor4D;
        const g = tf.randomNormal([6], 1, 0.5, "float32", 2) as tf.Tensor1D;
        const b = tf.randomNormal([6], 0, 1, "float32", 3) as tf.Tensor1D;
        const r = tf.randomNormal([3, 4, 5, 6], 0, 1, "float32", 4);
        const y = bn(x, g, b);
        const grads = tf.grads((x, g, b) =>
          tf.sum(tf.mul(bn(x as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D), r))
        )([x, g, b]);
        return [y, ...grads].map((t) => t.dataSync().slice());
      });
    const got = run((x, g, b) => batchNormTrain(x, g, b, 1e-5));
    const want = run((x, g, b) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b) as tf.Tensor4D;
    });
    for (const [i, what] of ["y", "dx", "dgamma", "dbeta"].entries()) {
      close(`${what} [${backend}]`, got[i], want[i], 1e-5);
    }
  }
});

Deno.test("globalAvgPool: value and gradient equal tf.mean over H, W", async () => {
  for (const backend of PARITY_BACKENDS) {
    await useBackend(backend);
    const run = (pool: (x: tf.Tensor4D) => tf.Tensor2D) =>
      tf.tidy(() => {
        const x = tf.randomNormal([2, 5, 3, 4], 0, 1, "float32", 1) as tf.Tensor4D;
        const r = tf.randomNormal([2, 4], 0, 1, "float32", 2);
        const [dx] = tf.grads((x) => tf.sum(tf.mul(pool(x as tf.Tensor4D), r)))([x]);
        return [pool(x), dx].map((t) => t.dataSync().slice());
      });
    const got = run(globalAvgPool), want = run((x) => tf.mean(x, [1, 2]) as tf.Tensor2D);
    close(`value [${backend}]`, got[0], want[0], 1e-6);
    close(`dx [${backend}]`, got[1], want[1], 1e-6);
  }
});

// --- BatchNorm state, training, checkpoints ------------------------------------------------------------------

Deno.test("BatchNorm: training updates the running statistics as PyTorch does; eval uses them", async () => {
  await useBackend("cpu");
  const model = buildModel("regnety_mini", {}, 3);
  await loadCheckpoint(model, FIXTURES + "regnety_mini.safetensors");
  const x = tf.randomNormal([4, 16, 16, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const get = (k: string) => model.buffers.get(k)!.dataSync().slice();
  const rm0 = get("stem.bn.running_mean"), rv0 = get("stem.bn.running_var");
  const evalBefore = model.predict(x);
  // Eval mode leaves the buffers alone.
  assertEquals(get("stem.bn.running_mean"), rm0);
  // The stem BN's batch statistics: over N, H, W of the stem convolution's output.
  const { mean, unbiased } = tf.tidy(() => {
    const y = referenceConv2d(x, model.params.get("stem.conv.weight")! as tf.Tensor4D, { stride: 2, pad: 1 });
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    const n = 4 * 8 * 8;
    return { mean: mean.dataSync().slice(), unbiased: tf.mul(variance, n / (n - 1)).dataSync().slice() };
  });
  model.forward(x, { training: true }).cls.dispose();
  close("running_mean", get("stem.bn.running_mean"), rm0.map((v, i) => 0.9 * v + 0.1 * mean[i]), 1e-5);
  close("running_var", get("stem.bn.running_var"), rv0.map((v, i) => 0.9 * v + 0.1 * unbiased[i]), 1e-5);
  assertEquals(get("stem.bn.num_batches_tracked")[0], 1);
  assertEquals(get("s4.b1.downsample.bn.num_batches_tracked")[0], 1);
  // Eval uses the (changed) running statistics, and one sample's logits do not depend on the rest of the batch.
  const evalAfter = model.predict(x);
  assert(relErr(evalAfter.dataSync(), evalBefore.dataSync()) > 1e-4, "eval output ignores the running stats");
  const one = model.predict(tf.slice(x, 0, 1));
  close("eval is per-sample", one.dataSync(), evalAfter.dataSync().slice(0, 10), 1e-5);
  // Training mode normalises with the batch statistics: a sample's logits depend on its batch.
  const t4 = model.forward(x, { training: true }).cls,
    t2 = model.forward(tf.slice(x, 0, 2), { training: true }).cls;
  assert(relErr(t2.dataSync(), t4.dataSync().slice(0, 20)) > 1e-4, "training mode uses running stats");
  tf.dispose([x, evalBefore, evalAfter, one, t4, t2]);
  model.dispose();
});

Deno.test("a tiny RegNetY's loss falls over 10 AdamW steps on wasm", async () => {
  await useBackend("wasm");
  const model = buildModel("regnety_mini", { numClasses: 4 }, 7);
  // 16 images of 4 classes: each class brightens a different quadrant of one colour channel.
  const n = 16, S = 16;
  const labels = Array.from({ length: n }, (_, i) => i % 4);
  const { x, y } = tf.tidy(() => {
    const noise = tf.randomNormal([n, S, S, 3], 0, 0.3, "float32", 11);
    const masks = labels.map((c) => {
      const m = new Float32Array(S * S * 3);
      for (let h = 0; h < S / 2; h++) {
        for (let w = 0; w < S / 2; w++) {
          m[(((c >> 1) * (S / 2) + h) * S + (c & 1) * (S / 2) + w) * 3 + (c % 3)] = 1.5;
        }
      }
      return tf.tensor3d(m, [S, S, 3]);
    });
    return {
      x: tf.add(noise, tf.stack(masks)) as tf.Tensor4D,
      y: tf.oneHot(tf.tensor1d(labels, "int32"), 4),
    };
  });
  const opt = new AdamW(model.params, { weightDecay: 0 });
  const names = [...model.params.keys()];
  const vars = names.map((k) => model.params.get(k)!);
  const losses: number[] = [];
  const before = tf.memory().numTensors;
  for (let step = 0; step < 10; step++) {
    const { value, grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, model.forward(x, { training: true }).cls) as tf.Scalar,
      vars,
    );
    losses.push(value.dataSync()[0]);
    const g = new Map(names.map((k, i) => [k, grads[vars[i].name]]));
    opt.apply(g, 1e-2);
    tf.dispose([value, ...Object.values(grads)]);
  }
  assertEquals(tf.memory().numTensors, before, "training steps leaked tensors");
  console.log(`  losses: ${losses.map((l) => l.toFixed(3)).join(" ")}`);
  assert(losses.every(Number.isFinite));
  assert(losses[9] < 0.7 * losses[0], `loss did not fall: ${losses[0]} → ${losses[9]}`);
  assertEquals(model.buffers.get("s3.b2.conv2.bn.num_batches_tracked")!.dataSync()[0], 10);
  const rv = model.buffers.get("s3.b2.conv2.bn.running_var")!.dataSync();
  assert(rv.some((v) => Math.abs(v - 1) > 1e-3), "running_var never moved");
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
});

Deno.test("a RegNet checkpoint saved as safetensors loads back identically, buffers included", async () => {
  await useBackend("cpu");
  const a = buildModel("regnety_mini", {}, 1);
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  a.forward(x, { training: true }).cls.dispose(); // non-trivial running stats and counters
  const dir = await Deno.makeTempDir();
  const path = `${dir}/regnet.safetensors`;
  try {
    await saveSafetensors(a, path, { arch: "regnety_mini" });
    const file = await readSafetensors(path);
    const nbt = file.tensors.get("stem.bn.num_batches_tracked")!;
    assertEquals([nbt.dtype, nbt.shape, Array.from(nbt.data)], ["I64", [], [1]]);
    assertEquals(file.tensors.get("s4.b1.conv2.conv.weight")!.shape, [64, 8, 3, 3]); // 8 groups of 8
    const b = buildModel("regnety_mini", {}, 9);
    const r = await loadCheckpoint(b, path);
    assertEquals(r.loaded, a.params.size + a.buffers.size);
    for (const [k, v] of [...a.params, ...a.buffers]) {
      const w = (b.params.get(k) ?? b.buffers.get(k))!;
      assertEquals(Array.from(w.dataSync()), Array.from(v.dataSync()), k);
    }
    const ya = a.predict(x), yb = b.predict(x);
    assertEquals(Array.from(yb.dataSync()), Array.from(ya.dataSync()));
    tf.dispose([ya, yb]);
    b.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  x.dispose();
  a.dispose();
});

Deno.test("deno task eval runs a RegNet: its crop size, and top-1 equal to the model's own predictions", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let seed = 3;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const files: { file: string; target: number }[] = [];
    for (const [target, cls] of ["a", "b"].entries()) {
      await Deno.mkdir(`${dir}/${cls}`);
      for (let i = 0; i < 3; i++) {
        const w = 40 + 5 * i, h = 36;
        const px = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rnd() * 256));
        await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(`${dir}/${cls}/${i}.png`);
        files.push({ file: `${dir}/${cls}/${i}.png`, target });
      }
    }
    const ckpt = FIXTURES + "regnety_mini.safetensors";
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fromFileUrl(new URL("../scripts/eval.ts", import.meta.url)),
        "--model=regnety_mini",
        `--checkpoint=${ckpt}`,
        `--data=${dir}`,
        "--backend=cpu",
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    await useBackend("cpu");
    const model = buildModel("regnety_mini");
    await loadCheckpoint(model, ckpt);
    let hits = 0;
    for (const f of files) {
      const x = tf.tensor4d(await evalTransform(f.file, { size: 32 }), [1, 32, 32, 3]);
      const p = model.predict(x);
      if (tf.tidy(() => tf.argMax(p, 1).dataSync()[0]) === f.target) hits++;
      tf.dispose([x, p]);
    }
    model.dispose();
    const m = stdout.match(/top-1 ([\d.]+)%.*images (\d+)/);
    if (!m) throw new Error(`no summary line in: ${stdout}`);
    assertEquals(Number(m[1]).toFixed(3), ((100 * hits) / files.length).toFixed(3));
    assertEquals(m[2], String(files.length));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
