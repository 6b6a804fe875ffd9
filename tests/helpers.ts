/** Shared test utilities: fixture paths, relative error, backend switching, tensor-leak checks. */
import * as tf from "@tensorflow/tfjs";
import { initBackend, quietVulkanStartup } from "../lib/accel/backend.ts";
import { buildModel } from "../lib/models/registry.ts";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { trainStep } from "../lib/train/step.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
export { nchwToNhwc, relErr } from "../lib/models/parity.ts";
import type { StateDict } from "../lib/io/tensor.ts";
import type { EpochLog } from "../lib/train/run_state.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

/** `shared/fixtures/reference/` beside the repository (CI lays shared/ next to the clone). */
export const FIXTURES = fromFileUrl(new URL("../../shared/fixtures/reference/", import.meta.url));

/**
 * The backends every parity test runs on: wasm with its matrix products through the machine's BLAS (the
 * default where one loads) and through the stock XNNPACK kernel (what runs where none does).
 */
export const PARITY_BACKENDS = ["cpu", "wasm", "wasm-xnnpack"] as const;

/**
 * Whether this machine has a WebGPU adapter (CI: Mesa's software Vulkan, Debian's mesa-vulkan-drivers), and the
 * GPU backends the parity and training tests then run on too.
 */
export const WEBGPU: boolean = await (async () => {
  quietVulkanStartup();
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  try {
    return !!gpu && (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
})();
export const GPU_BACKENDS: readonly string[] = WEBGPU ? ["webgpu"] : [];
export const NO_WEBGPU = "no WebGPU adapter here (install mesa-vulkan-drivers and libvulkan1)";

export async function fixture(name: string): Promise<StateDict> {
  return (await readSafetensors(FIXTURES + name)).tensors;
}

/** A backend by name; `wasm-xnnpack` is wasm with the stock matmul kernel. */
export async function useBackend(name: string): Promise<void> {
  if (name === "wasm-xnnpack") await initBackend("wasm", { matmul: "xnnpack" });
  else await initBackend(name);
}

/**
 * A few AdamW steps of the mini distilled DeiT on seeded random batches (drop path on: every path draws the same
 * masks from the same seeded generator) — for tests that compare two ways of computing the same training run
 * (e.g. the two settings of the op switch: `withFastOps(false, () => trainTiny(5))`).
 * Returns the losses and one weight matrix at the end.
 */
export async function trainTiny(steps: number): Promise<{ losses: number[]; weights: Float32Array }> {
  const model = buildModel("deit_mini_distilled_patch8_32", { dropPathRate: 0.1 }, 11);
  const noDecay = new Set([...model.torchShapes()].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k));
  const opt = new AdamW(model.params, { noDecay });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, "float32", 100 + i) as tf.Tensor4D;
    const y = tf.tensor1d([i % 10, (i + 3) % 10, (i + 5) % 10, 1], "int32");
    losses.push(await stepLoss(model, opt, x, { labels: y }, { lr: 5e-4 }));
    tf.dispose([x, y]);
  }
  const weights = ((await model.params.get("blocks.1.mlp.fc2.weight")!.data()) as Float32Array).slice();
  opt.dispose();
  model.dispose();
  return { losses, weights };
}

/** One training step (lib/train/step.ts's, the one every engine runs) with its loss read back. */
export async function stepLoss(...args: Parameters<typeof trainStep>): Promise<number> {
  const { loss } = await trainStep(...args);
  const value = (await loss.data())[0];
  loss.dispose();
  return value;
}

/**
 * A training config small enough for a test to run it through scripts/train.ts in seconds: deit_mini_patch4_28,
 * 96 Fashion-MNIST training images, batches of 32, 3 epochs evaluated on 48 test images; `overrides` on top.
 */
export function tinyRunConfig(overrides: Record<string, unknown> = {}) {
  return {
    description: "test",
    config: {
      model: "deit_mini_patch4_28",
      dataset: "fashion-mnist",
      val_split: "test",
      train_limit: 96,
      eval_limit: 48,
      batch_size: 32,
      epochs: 3,
      warmup_epochs: 1,
      workers: 1,
      loader_workers: 0,
      lr: 1e-3,
      ...overrides,
    },
  };
}

const TRAIN_SCRIPT = fromFileUrl(new URL("../scripts/train.ts", import.meta.url));

/** `scripts/train.ts args…` as a child process (NO_COLOR, output piped), with `env` added to its environment. */
export function trainProcess(args: string[], env: Record<string, string> = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRAIN_SCRIPT, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

/** A run folder's log.jsonl, one object per epoch logged ([] when empty). */
export async function readRunLog(dir: string): Promise<(EpochLog & Record<string, unknown>)[]> {
  return (await Deno.readTextFile(`${dir}/log.jsonl`)).split("\n").filter((l) => l.trim()).map((l) =>
    JSON.parse(l)
  );
}
