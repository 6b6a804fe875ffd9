/**
 * The GPU device check (run by bench/gpu_check.sh, from the repository or from the network-free pack that
 * bench/pack_gpu_check.sh makes): what a person with a GPU runs once, in under 10 minutes, to learn whether and
 * how fast this project trains there. Phases, each written to the JSON as soon as it ends (a time-out keeps what
 * was done):
 *
 *   info        Deno, every backend's probe, the GPUs this process may use, the WebGPU adapter, `auto`'s choice
 *               and its training self-test, whether TensorFlow placed work on a GPU
 *   parity      the reference fixtures on the GPU backend (ViT logits, features, loss, every gradient; RegNet)
 *   train       N optimiser steps of a model at its resolution (default 50 of deit_tiny_patch16_224 at 224):
 *               images/s, peak device memory where the backend reports it
 *   throughput  the paper's Table 1 method for DeiT-Ti/S/B: the largest batch of a doubling series that runs
 *               (capped; said), then the mean time of a batch over up to 30 runs
 *   two-gpus    with 2 or more GPUs: two training processes at once, one per GPU (lib/accel/gpu_select.ts)
 *   peer        the PyTorch peer (bench/peer_torch.py) on CUDA for the same shapes, float32 and mixed precision,
 *               when python3 has torch with CUDA
 *
 *   deno run -A bench/gpu_check.ts [--backend webgpu] [--fixtures DIR] [--out results/gpu_check.json] [--quick]
 *
 * `--quick` swaps the models for tiny ones so the whole check runs in a few minutes on a software adapter (the
 * dry run of the pack); its figures say nothing about a GPU.
 */
import * as tf from "@tensorflow/tfjs";
import {
  initBackend,
  probeAll,
  quietVulkanStartup,
  tensorflowUsesGpu,
  trainingSelfTest,
} from "../lib/accel/backend.ts";
import { benchmark, type BenchResult } from "../lib/train/bench.ts";
import { intFlag, parseFlags, runMain } from "../lib/base/cli.ts";
import { gpuEnv, nvidiaBusIds, visibleGpus } from "../lib/accel/gpu_select.ts";
import { withFastOps } from "../lib/accel/switch.ts";
import { machineLine } from "../lib/base/machine.ts";
import {
  failures,
  type ParityItem,
  regnetParity,
  vitDistilledParity,
  vitMiniParity,
} from "../lib/models/parity.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

const USAGE = "usage: deno run -A bench/gpu_check.ts [--backend webgpu|tensorflow] [--fixtures DIR] " +
  "[--out FILE] [--quick] [--peer FILE.py]";

interface Sizes {
  train: { model: string; batch: number; steps: number };
  throughput: { model: string; cap: number }[];
  runs: number;
}

const FULL: Sizes = {
  train: { model: "deit_tiny_patch16_224", batch: 64, steps: 50 },
  throughput: [
    { model: "deit_tiny_patch16_224", cap: 1024 },
    { model: "deit_small_patch16_224", cap: 512 },
    { model: "deit_base_patch16_224", cap: 256 },
  ],
  runs: 30,
};
const QUICK: Sizes = {
  train: { model: "deit_micro_patch7_28", batch: 8, steps: 5 },
  throughput: [{ model: "deit_micro_patch7_28", cap: 16 }],
  runs: 3,
};

/** Peak device bytes tfjs reports (WebGPU: numBytesInGPU; tensorflow: none). */
function deviceBytes(): number | undefined {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  return m.numBytesInGPU;
}

async function adapterInfo() {
  quietVulkanStartup();
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const a = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (!a) return null;
  const i = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    fallback: i.isFallbackAdapter ?? false,
    maxBufferSize: a.limits.maxBufferSize,
  };
}

async function run(cmd: string, args: string[], env: Record<string, string>, timeoutS: number) {
  const c = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" });
  const child = c.spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr).slice(-2000) };
}

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["backend", "fixtures", "out", "phase", "peer", "steps"],
    boolean: ["quick"],
    default: { backend: "webgpu", out: "results/gpu_check.json", peer: "bench/peer_torch.py" },
  }, USAGE);
  const sizes = a.quick ? QUICK : FULL;
  const started = performance.now();
  const secs = () => Math.round((performance.now() - started) / 100) / 10;

  // A child of the two-GPU phase: only the training steps, JSON on stdout.
  if (a.phase === "train") {
    await initBackend(String(a.backend));
    const r = await benchmark({
      model: sizes.train.model,
      mode: "train",
      batchSize: sizes.train.batch,
      runs: a.steps ? intFlag(a.steps, "steps") : sizes.train.steps,
      warmup: 2,
      microBatches: 1,
    });
    console.log(JSON.stringify({ ...r, adapter: await adapterInfo(), finished_at: Date.now() }));
    return;
  }

  const out = String(a.out);
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: await machineLine(),
    quick: Boolean(a.quick),
    backend: String(a.backend),
  };
  const save = async (phase: string, value: unknown) => {
    report[phase] = value;
    report.seconds = secs();
    await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
    console.error(`[${secs()} s] ${phase} done`);
  };
  const attempt = async (phase: string, fn: () => Promise<unknown>) => {
    try {
      await save(phase, await fn());
    } catch (e) {
      await save(phase, { error: (e as Error).message.split("\n")[0] });
    }
  };

  // ---- info
  const gpus = await visibleGpus();
  const adapter = await adapterInfo();
  await attempt("info", async () => {
    const probes = await probeAll();
    const auto = await initBackend("auto");
    return {
      deno: Deno.version.deno,
      probes,
      cuda_visible_gpus: gpus,
      webgpu_adapter: adapter,
      auto: { name: auto.name, detail: auto.detail, skipped: auto.skipped },
      tensorflow_uses_gpu: await tensorflowUsesGpu(),
    };
  });
  await initBackend(String(a.backend));
  report.ran_on_gpu = a.backend === "tensorflow" ? await tensorflowUsesGpu() : !!adapter && !adapter.fallback;

  // ---- parity
  await attempt("parity", async () => {
    await trainingSelfTest();
    const dir = String(
      a.fixtures ?? fromFileUrl(new URL("../../shared/fixtures/reference", import.meta.url)),
    );
    const groups: Record<string, ParityItem[]> = {
      vit_mini: await vitMiniParity(dir),
      "vit_mini_distilled.pth": await vitDistilledParity(dir, "vit_mini_distilled.pth"),
      "vit_mini_distilled.safetensors (reference ops)": await withFastOps(
        false,
        () => vitDistilledParity(dir, "vit_mini_distilled.safetensors"),
      ),
      regnety_mini: await regnetParity(dir),
    };
    const all = Object.values(groups).flat();
    return {
      passed: failures(all).length === 0,
      items: all.length,
      failures: failures(all),
      worst: Object.fromEntries(
        Object.entries(groups).map(([k, v]) => [k, Math.max(...v.map((i) => i.relErr / i.tol))]),
      ),
      note: "worst = the largest relative error as a fraction of its tolerance (< 1 passes)",
    };
  });

  // ---- train
  await attempt("train", async () => {
    let peak = deviceBytes() ?? 0;
    const r = await benchmark({
      model: sizes.train.model,
      mode: "train",
      batchSize: sizes.train.batch,
      runs: sizes.train.steps,
      warmup: 2,
      microBatches: 1,
      onRun: () => (peak = Math.max(peak, deviceBytes() ?? 0)),
    });
    return { ...r, peak_device_mb: deviceBytes() === undefined ? null : peak / 2 ** 20 };
  });

  // ---- throughput (Table 1 method)
  await attempt("throughput", async () => {
    const rows: (BenchResult & { batch_note: string })[] = [];
    for (const { model, cap } of sizes.throughput) {
      let best: BenchResult | undefined, why = `cap ${cap}`;
      for (let b = 8; b <= cap; b *= 2) {
        try {
          const probe = await benchmark({ model, mode: "infer", batchSize: b, runs: 1, warmup: 1 });
          best = probe;
          if (probe.step_ms > 4000) {
            why = `stopped doubling at ${probe.step_ms.toFixed(0)} ms a batch`;
            break;
          }
        } catch (e) {
          why = `batch ${b} failed: ${(e as Error).message.split("\n")[0].slice(0, 120)}`;
          break;
        }
      }
      if (!best) throw new Error(`${model}: no batch ran (${why})`);
      const runs = Math.max(3, Math.min(sizes.runs, Math.floor(60_000 / Math.max(best.step_ms, 1))));
      const r = await benchmark({ model, mode: "infer", batchSize: best.batch_size, runs, warmup: 2 });
      rows.push({ ...r, batch_note: `largest of 8, 16, … that ran (${why})` });
    }
    return rows;
  });

  // ---- two GPUs at once
  await attempt("two_gpus", async () => {
    if (gpus.length < 2) return { skipped: `${gpus.length} GPU(s) visible` };
    const bus = await nvidiaBusIds();
    const self = fromFileUrl(import.meta.url);
    const args = [
      "run",
      "-A",
      self,
      "--phase=train",
      `--backend=${a.backend}`,
      "--steps=20",
      ...(a.quick ? ["--quick"] : []),
    ];
    const t0 = Date.now();
    const rs = await Promise.all(
      [0, 1].map((k) =>
        run(Deno.execPath(), args, { ...gpuEnv(String(gpus[k].index), bus[gpus[k].index]) }, 240)
      ),
    );
    return rs.map((r, k) => {
      const line = r.stdout.trim().split("\n").pop() ?? "";
      try {
        const j = JSON.parse(line);
        return {
          gpu: gpus[k].index,
          env: gpuEnv(String(gpus[k].index), bus[gpus[k].index]),
          ...j,
          wall_s: (j.finished_at - t0) / 1000,
        };
      } catch {
        return { gpu: gpus[k].index, error: `exit ${r.code}: ${r.stderr.split("\n").slice(-3).join(" ")}` };
      }
    });
  });

  // ---- the PyTorch peer on CUDA
  await attempt("peer", async () => {
    const peer = String(a.peer);
    const probe = await run(
      "python3",
      ["-c", "import torch; print(torch.__version__, torch.cuda.is_available())"],
      {},
      60,
    )
      .catch((e) => ({ code: 1, stdout: "", stderr: String(e) }));
    if (probe.code !== 0 || !probe.stdout.includes("True")) {
      return {
        skipped: `no python3 torch with CUDA (${(probe.stdout + probe.stderr).trim().slice(0, 200)})`,
      };
    }
    const shapes = [
      { model: sizes.train.model, mode: "train", batch: sizes.train.batch },
      ...((report.throughput as BenchResult[] | undefined) ?? []).map((r) => ({
        model: r.model,
        mode: "infer",
        batch: r.batch_size,
      })),
    ];
    const rows = [];
    for (const s of shapes) {
      for (const amp of [false, true]) {
        const r = await run(
          "python3",
          [
            peer,
            `--model=${s.model}`,
            `--mode=${s.mode}`,
            `--batch-size=${s.batch}`,
            "--device=cuda",
            `--runs=${s.mode === "train" ? sizes.train.steps : sizes.runs}`,
            ...(amp ? ["--amp"] : []),
            "--json",
          ],
          {},
          120,
        );
        try {
          rows.push(JSON.parse(r.stdout.trim().split("\n").pop()!));
        } catch {
          rows.push({ ...s, amp, error: `exit ${r.code}: ${r.stderr.split("\n").slice(-2).join(" ")}` });
        }
      }
    }
    return rows;
  });
  console.log(`wrote ${out} in ${secs()} s (ran on a GPU: ${report.ran_on_gpu})`);
});
