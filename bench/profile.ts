/**
 * `deno task bench:profile --model NAME [--batch-size 128] [--img-size S] [--backend wasm] [--matmul blas|xnnpack]
 *  [--impl fast|reference] [--top 14]`
 *
 * Where one training step's time goes: `tf.profile` of forward + loss + backward on one engine (after two
 * warm-up steps), kernel time summed per kernel name. "unnamed scope" rows are custom-gradient scopes whose
 * time also counts in the kernels inside them. bench/NOTES.md quotes its output.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend, parseMatMul } from "../lib/accel/backend.ts";
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { buildVit } from "../lib/models/registry.ts";
import { computeGrads, crossEntropyBothHeads } from "../lib/train/step.ts";
import { fastOps, setFastOps } from "../lib/accel/switch.ts";

const USAGE =
  "usage: deno task bench:profile --model NAME [--batch-size 128] [--img-size S] [--backend wasm] " +
  "[--matmul blas|xnnpack] [--impl fast|reference] [--top 14]";

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["model", "batch-size", "img-size", "backend", "matmul", "impl", "top"],
    default: { "batch-size": "128", backend: "wasm", top: "14" },
  }, USAGE);
  if (!a.model) throw new UsageError(`--model is required\n${USAGE}`);
  const matmul = a.matmul === undefined ? undefined : parseMatMul(String(a.matmul));
  if (matmul === null) throw new UsageError(`--matmul must be blas or xnnpack, got '${a.matmul}'`);
  if (a.impl !== undefined) {
    if (a.impl !== "fast" && a.impl !== "reference") throw new UsageError("--impl must be fast or reference");
    setFastOps(a.impl === "fast");
  }
  const impl = fastOps() ? "fast" : "reference";
  await initBackend(String(a.backend), { matmul });
  const model = buildVit(
    String(a.model),
    a["img-size"] ? { imgSize: intFlag(a["img-size"], "img-size") } : {},
    0,
  );
  const B = intFlag(a["batch-size"], "batch-size"), S = model.config.imgSize;
  const x = tf.randomNormal([B, S, S, model.config.inChans], 0, 1, "float32", 1) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: B }, (_, i) => i % model.config.numClasses), "int32");
  const step = () => {
    const { loss, grads } = computeGrads(model, x, { labels }, crossEntropyBothHeads, 1);
    tf.dispose([loss, ...grads.values()]);
  };
  step();
  step();
  const t0 = performance.now();
  const info = await tf.profile(step);
  const wall = performance.now() - t0;
  const byName = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += Number(k.kernelTimeMs);
    byName.set(k.name, e);
  }
  console.log(
    `${a.model} train step, batch ${B} @${S}, ${tf.getBackend()}, impl ${impl}: ${wall.toFixed(0)} ms ` +
      `(profiled), ${info.kernels.length} kernel calls`,
  );
  console.log("kernel".padEnd(22) + "calls".padStart(7) + "ms".padStart(10));
  const rows = [...byName].sort((p, q) => q[1].ms - p[1].ms).slice(0, intFlag(a.top, "top"));
  for (const [name, e] of rows) {
    console.log(name.padEnd(22) + String(e.calls).padStart(7) + e.ms.toFixed(1).padStart(10));
  }
  tf.dispose([x, labels]);
  model.dispose();
});
