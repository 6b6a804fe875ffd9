/**
 * The training checkpoint's format (lib/io/train_state.ts) is the one runs in progress resume from: what it
 * writes is byte for byte the layout written so far, and the run folders committed under results/runs/ (some
 * of them stopped mid-run, to be resumed) read back, load into their models and re-serialise to the same bytes.
 */
import { assert, assertEquals } from "@std/assert";
import { readCheckpointFile } from "../lib/io/checkpoint.ts";
import { loadStateDict } from "../lib/io/checkpoint.ts";
import { readSafetensors, serializeSafetensors } from "../lib/io/safetensors.ts";
import type { StateDict } from "../lib/io/tensor.ts";
import {
  decodeTrainState,
  encodeTrainState,
  modelWeights,
  parseTrainingCheckpoint,
  trainingMetadata,
  trainingStateDict,
  type TrainState,
  withoutOptimiser,
  writeTrainingCheckpoint,
} from "../lib/io/train_state.ts";
import { exists, repoPath } from "../lib/base/paths.ts";
import { buildModel } from "../lib/models/registry.ts";
import { AdamW, noWeightDecay } from "../lib/train/optim.ts";
import { useBackend } from "./helpers.ts";

const f32 = (...v: number[]) => Float32Array.from(v);

const state: TrainState = {
  format: 1,
  loader: { epoch: 3, step: 5, seed: 0, batchSize: 64 },
  global_step: 29,
  best_acc1: -Infinity,
  partial: { loss_sum: 11.25, steps: 5, images: 320, seconds: 1.5 },
  rng: [17, 23],
  optim_step: 29,
  model: "deit_micro_patch7_28",
};

Deno.test("a training checkpoint is written in the layout runs have been saved with", async () => {
  const weights: StateDict = new Map([
    ["w", { dtype: "F32", shape: [2, 1], data: f32(1, 2) }],
    ["b", { dtype: "F32", shape: [1], data: f32(3) }],
  ]);
  const tensors = {
    weights,
    optimSlots: { m: { w: f32(0.1, 0.2), b: f32(0.3) }, v: { w: f32(0.4, 0.5), b: f32(0.6) } },
    ema: { w: f32(7, 8), b: f32(9) },
  };
  // As the trainer wrote it before this module: the weights, the slots, the EMA, then the metadata in this order.
  const flat = (data: Float32Array) => ({ dtype: "F32" as const, shape: [data.length], data });
  const want: StateDict = new Map([
    ...weights,
    ["_train.optim.m.w", flat(f32(0.1, 0.2))],
    ["_train.optim.m.b", flat(f32(0.3))],
    ["_train.optim.v.w", flat(f32(0.4, 0.5))],
    ["_train.optim.v.b", flat(f32(0.6))],
    ["_train.ema.w", flat(f32(7, 8))],
    ["_train.ema.b", flat(f32(9))],
  ]);
  const wantMeta = {
    train_state: '{"format":1,"loader":{"epoch":3,"step":5,"seed":0,"batchSize":64},"global_step":29,' +
      '"best_acc1":null,"partial":{"loss_sum":11.25,"steps":5,"images":320,"seconds":1.5},"rng":[17,23],' +
      '"optim_step":29,"model":"deit_micro_patch7_28"}',
    arch: "deit_micro_patch7_28",
    num_classes: "10",
  };
  const dir = await Deno.makeTempDir();
  try {
    await writeTrainingCheckpoint(`${dir}/ck.safetensors`, tensors, state, 10);
    assertEquals(await Deno.readFile(`${dir}/ck.safetensors`), serializeSafetensors(want, wantMeta));

    // And back: weights apart from the training state, −Infinity restored, the partial epoch kept.
    const back = parseTrainingCheckpoint(await readCheckpointFile(`${dir}/ck.safetensors`));
    assertEquals([...back.weights.keys()], ["w", "b"]);
    assertEquals(back.optimSlots, tensors.optimSlots);
    assertEquals(back.ema, tensors.ema);
    assertEquals(back.state, state);
    assertEquals([...modelWeights(want).keys()], ["w", "b"]);
    assertEquals([...withoutOptimiser(want).keys()], ["w", "b", "_train.ema.w", "_train.ema.b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train_state: an end-of-epoch state has no partial sums; unknown or missing states are null", () => {
  const { partial: _, ...end } = state;
  const s: TrainState = { ...end, best_acc1: 81.5 };
  assertEquals(JSON.parse(encodeTrainState(s)), s);
  assert(!encodeTrainState(s).includes("partial"));
  assertEquals(decodeTrainState({ train_state: encodeTrainState(s) }), s);
  assertEquals(decodeTrainState({}), null);
  assertEquals(decodeTrainState({ train_state: "{}" }), null);
  assertEquals(decodeTrainState({ train_state: JSON.stringify({ ...s, format: 2 }) }), null);
});

/** The checkpoints of the run folders committed under results/runs/ (none in a checkout without them). */
async function committedCheckpoints(): Promise<string[]> {
  const root = repoPath("results", "runs");
  const out: string[] = [];
  if (!(await exists(root))) return out;
  for await (const grid of Deno.readDir(root)) {
    if (!grid.isDirectory) continue;
    for await (const run of Deno.readDir(`${root}/${grid.name}`)) {
      const p = `${root}/${grid.name}/${run.name}/checkpoint-last.safetensors`;
      if (run.isDirectory && (await exists(p))) out.push(p);
    }
  }
  return out.sort();
}

const committed = await committedCheckpoints();

Deno.test({
  name:
    "committed run checkpoints (some mid-run) read back, load into their models, re-serialise byte for byte",
  ignore: committed.length === 0,
  fn: async () => {
    await useBackend("cpu");
    let withOptimiser = 0;
    for (const path of committed) {
      const bytes = await Deno.readFile(path);
      const file = await readSafetensors(path);
      const ck = parseTrainingCheckpoint({ stateDict: file.tensors, metadata: file.metadata });
      const st = ck.state;
      if (!st) throw new Error(`${path}: no training state`);
      assertEquals(st.model, file.metadata.arch, path);
      const numClasses = Number(file.metadata.num_classes);
      // The same bytes from the parsed parts (a compacted run's note kept after the training metadata).
      const { train_state: _, arch: __, num_classes: ___, ...rest } = file.metadata;
      const again = serializeSafetensors(
        trainingStateDict(ck),
        { ...trainingMetadata(st, numClasses), ...rest },
      );
      assertEquals(again.length, bytes.length, path);
      assert(again.every((b, i) => b === bytes[i]), `${path}: re-serialised bytes differ`);

      // The weights fit the model the run trains; a run in progress has the optimiser's slots for every param.
      const run = JSON.parse(await Deno.readTextFile(path.replace(/[^/]+$/, "config.json")));
      const model = buildModel(st.model, { numClasses, imgSize: run.derived.img_size }, 0);
      try {
        loadStateDict(model, ck.weights, { source: path });
        if (Object.keys(ck.optimSlots).length > 0) {
          withOptimiser++;
          const shapes = model.torchShapes();
          const opt = new AdamW(model.params, {
            noDecay: new Set([...shapes].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k)),
          });
          opt.setState({ step: st.optim_step, slots: ck.optimSlots });
          assertEquals((await opt.getState()).step, st.optim_step);
          opt.dispose();
        }
      } finally {
        model.dispose();
      }
    }
    console.log(`${committed.length} checkpoints, ${withOptimiser} with optimiser state`);
  },
});
