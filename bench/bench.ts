/**
 * `deno task bench --model NAME --mode infer|train --batch-size N [--img-size S] [--backend B] [--runs 30]
 *  [--warmup 2] [--impl fast|reference] [--micro-batches N] [--json]`
 */
import { initBackend, parseMatMul } from "../lib/accel/backend.ts";
import { onePerCore } from "../lib/accel/engine.ts";
import { fastOps, setFastOps } from "../lib/accel/switch.ts";
import { benchmark } from "../lib/train/bench.ts";
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { machineLine } from "../lib/base/machine.ts";
import { modelConfig } from "../lib/models/registry.ts";

const USAGE = `usage: deno task bench --model NAME --mode infer|train --batch-size N [--img-size S]
       [--backend auto|tensorflow|webgpu|wasm|cpu] [--runs 30] [--warmup 2] [--impl fast|reference]
       [--micro-batches auto|N] [--workers N] [--matmul blas|xnnpack] [--json]
--workers: data-parallel engines (default: one per core on wasm/cpu, 1 elsewhere).
--stock-kernels: keep tfjs-backend-wasm's own Slice kernel (before/after measurements).
--impl reference: the readable reference layers without the fast ops (before/after measurements); default
  fast, or reference under DEIT_OPS=reference.
--matmul xnnpack: wasm matrix products through the stock kernel instead of the machine's BLAS.`;

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: [
      "model",
      "mode",
      "batch-size",
      "img-size",
      "backend",
      "runs",
      "warmup",
      "impl",
      "micro-batches",
      "workers",
      "matmul",
    ],
    boolean: ["json", "stock-kernels"],
    default: {
      backend: "auto",
      runs: "30",
      warmup: "2",
      "micro-batches": "1",
      "batch-size": "32",
    },
  }, USAGE);
  if (!a.model) throw new UsageError(`--model is required\n${USAGE}`);
  const mode = String(a.mode ?? "infer");
  if (mode !== "infer" && mode !== "train") {
    throw new UsageError(`--mode must be infer or train, got '${mode}'`);
  }
  if (a.impl !== undefined) {
    if (a.impl !== "fast" && a.impl !== "reference") throw new UsageError(`--impl must be fast or reference`);
    setFastOps(a.impl === "fast"); // before the workers start: they take the parent's setting
  }
  modelConfig(String(a.model));
  const matmul = a.matmul === undefined ? undefined : parseMatMul(String(a.matmul));
  if (matmul === null) throw new UsageError(`--matmul must be blas or xnnpack, got '${a.matmul}'`);
  const backend = await initBackend(String(a.backend), {
    stockKernels: Boolean(a["stock-kernels"]),
    matmul,
  });
  // Default: one engine per core where the engine is single-threaded (wasm, cpu); one otherwise.
  const workers = a.workers
    ? intFlag(a.workers, "workers")
    : onePerCore(backend.name)
    ? navigator.hardwareConcurrency
    : 1;
  const r = await benchmark({
    workers,
    backend: backend.name,
    stockKernels: Boolean(a["stock-kernels"]),
    matmul,
    model: String(a.model),
    mode,
    batchSize: intFlag(a["batch-size"], "batch-size"),
    imgSize: a["img-size"] ? intFlag(a["img-size"], "img-size") : undefined,
    runs: intFlag(a.runs, "runs"),
    warmup: Number(a.warmup),
    microBatches: a["micro-batches"] === "auto" ? "auto" : intFlag(a["micro-batches"], "micro-batches"),
    onRun: a.json ? undefined : (i, ms) => console.error(`run ${i + 1}: ${ms.toFixed(0)} ms`),
  });
  const ops = fastOps() ? "fast" : "reference";
  const out = {
    ...r,
    impl: ops,
    backend: backend.name,
    date: new Date().toISOString(),
    machine: await machineLine(),
  };
  if (r.micro_batches > 1) {
    console.error(
      `note: ${r.batch_size / r.workers} images per engine do not fit in the wasm heap at once: each step ` +
        `accumulated gradients over ${r.micro_batches} micro-batches`,
    );
  }
  if (a.json) console.log(JSON.stringify(out));
  else {
    console.log(
      `${r.model} ${r.mode} ${r.backend} batch ${r.batch_size} @${r.img_size}: ${
        r.images_per_s.toFixed(2)
      } images/s, ` +
        `${r.step_ms.toFixed(1)} ms/${r.mode === "train" ? "step" : "batch"} (min ${r.min_ms.toFixed(1)}, ` +
        `max ${r.max_ms.toFixed(1)}, ${r.runs} runs), ${r.workers} worker(s), impl ${ops}${
          r.matmul ? `, matmul ${r.matmul}` : ""
        }, peak RSS ${r.peak_rss_mb.toFixed(0)} MB`,
    );
  }
});
