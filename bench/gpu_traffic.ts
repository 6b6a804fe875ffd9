/**
 * `deno task bench:traffic`: host↔device bytes per training step of one engine on a GPU backend — the step as it
 * was (gradients and BatchNorm statistics read back to the host, summed there and uploaded again; the loss read
 * every step) against the step that stays on the device (clipping, AdamW and EMA on the device; the loss read
 * every 10 steps, as `deno task train` does). Bytes are counted at the backend's `write` (uploads, including
 * the batch and every scalar an op needs) and `read`/`readSync` (read-backs), so they include everything tfjs
 * moves. Time per step is printed too (on Mesa's software adapter it measures the CPU, not a GPU).
 *
 *   deno task bench:traffic [--model deit_micro_patch7_28] [--batch-size 32] [--steps 10] [--backend webgpu]
 */
import { initBackend } from "../lib/accel/backend.ts";
import { intFlag, parseFlags, runMain } from "../lib/base/cli.ts";
import { machineLine } from "../lib/base/machine.ts";
import { DataParallel } from "../lib/train/parallel/data_parallel.ts";
import { buildModel, modelIO } from "../lib/models/registry.ts";

const USAGE =
  "usage: deno task bench:traffic [--model NAME] [--batch-size N] [--steps N] [--backend webgpu|…]";
const READ_EVERY = 10;

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["model", "batch-size", "steps", "backend"],
    boolean: ["json"],
    default: { model: "deit_micro_patch7_28", "batch-size": "32", steps: "10", backend: "webgpu" },
  }, USAGE);
  const name = String(a.model), B = intFlag(a["batch-size"], "batch-size"), steps = intFlag(a.steps, "steps");
  const backend = await initBackend(String(a.backend));
  const { imgSize } = modelIO(name);
  const model = buildModel(name, {}, 0);
  const params = [...model.params.values()].reduce((n, v) => n + v.size, 0);
  const x = Float32Array.from({ length: B * imgSize * imgSize * 3 }, (_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: B }, (_, i) => i % 10);
  const rows = [];
  for (const hostExchange of [true, false]) {
    const dp = await DataParallel.start(model, { name, overrides: {} }, {
      workers: 1,
      backend: backend.name,
      clipGrad: 1,
      emaDecay: 0.999,
      hostExchange,
      countTraffic: true,
    });
    try {
      const step = (i: number) =>
        dp.step(
          x.slice(),
          [B, imgSize, imgSize, 3],
          labels.slice(),
          1e-4,
          1,
          undefined,
          hostExchange || (i + 1) % READ_EVERY === 0,
        );
      for (let i = 0; i < 2; i++) await step(READ_EVERY - 1); // warm-up (shaders compiled), losses read
      const t0 = { ...dp.lastTraffic! }, start = performance.now();
      for (let i = 0; i < steps; i++) await step(i);
      await dp.readLosses();
      const ms = (performance.now() - start) / steps;
      const t1 = dp.lastTraffic!;
      rows.push({
        step: hostExchange ? "before: exchange through the host" : "after: on the device",
        up_bytes_per_step: (t1.up - t0.up) / steps,
        down_bytes_per_step: (t1.down - t0.down) / steps,
        ms_per_step: ms,
      });
    } finally {
      await dp.close();
    }
  }
  const batchBytes = x.byteLength + labels.byteLength;
  if (a.json) {
    console.log(JSON.stringify({ model: name, backend: backend.name, batch: B, params, batchBytes, rows }));
    return;
  }
  console.log(
    `${name} (${params.toLocaleString("en")} parameters, ${(4 * params / 1e6).toFixed(2)} MB of float32), ` +
      `batch ${B} (${(batchBytes / 1e6).toFixed(2)} MB), ${backend.name}: ${backend.detail}`,
  );
  console.log(await machineLine());
  console.log("| step | host→device bytes/step | device→host bytes/step | ms/step |\n|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.step} | ${Math.round(r.up_bytes_per_step).toLocaleString("en")} | ` +
        `${Math.round(r.down_bytes_per_step).toLocaleString("en")} | ${r.ms_per_step.toFixed(0)} |`,
    );
  }
});
