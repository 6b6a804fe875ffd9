/**
 * A data-parallel worker: one TensorFlow.js engine (its own wasm instance, so one core) holding a full
 * replica of the model and of the optimiser.
 *
 * A training step: gradients of the mean loss on this worker's shard, scaled by shard/total so that the sum
 * over workers is the gradient of the whole batch's mean loss; written to this worker's slot of the shared
 * buffer; a barrier; then every worker adds the slots in rank order (the same floats in the same order, so
 * the same result everywhere) and applies the same AdamW update — replicas stay identical without sending
 * weights around.
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { VisionTransformer } from "../vit/model.ts";
import { AdamW } from "../train/optim.ts";
import { computeGrads, crossEntropyBothHeads } from "../train/step.ts";
import { BARRIER_BYTES, type InitMessage, type Reply, type Request } from "./protocol.ts";

let model: VisionTransformer | undefined;
let opt: AdamW | undefined;
let init: InitMessage | undefined;
let names: string[] = [];
let offsets: number[] = [];

function post(r: Reply, transfer: Transferable[] = []) {
  self.postMessage(r, transfer);
}

/** Generation barrier over the two Int32 words at the end of the shared buffer. */
function barrier(sab: SharedArrayBuffer, worldSize: number) {
  const words = new Int32Array(sab, sab.byteLength - BARRIER_BYTES, 2);
  const gen = Atomics.load(words, 1);
  if (Atomics.add(words, 0, 1) === worldSize - 1) {
    Atomics.store(words, 0, 0);
    Atomics.add(words, 1, 1);
    Atomics.notify(words, 1);
  } else {
    while (Atomics.load(words, 1) === gen) Atomics.wait(words, 1, gen);
  }
}

async function handle(msg: Request) {
  switch (msg.type) {
    case "init": {
      init = msg;
      await initBackend(msg.backend, { stockKernels: msg.stockKernels });
      model = new VisionTransformer(msg.config, { seed: msg.seed + msg.rank, impl: msg.impl });
      for (const [k, v] of model.params) {
        const w = msg.weights[k];
        if (!w || w.length !== v.size) throw new Error(`worker ${msg.rank}: weights for '${k}' missing`);
        v.assign(tf.tensor(w, v.shape, "float32"));
      }
      names = [...model.params.keys()];
      let o = 0;
      offsets = names.map((n) => {
        const at = o;
        o += model!.params.get(n)!.size;
        return at;
      });
      opt = new AdamW(model.params, { ...msg.optim, noDecay: new Set(msg.optim.noDecay) });
      post({ type: "ready", rank: msg.rank });
      return;
    }
    case "step": {
      const { sab, worldSize, rank, numParams } = init!;
      const x = tf.tensor4d(msg.shard.x, msg.shard.shape);
      const y = tf.tensor1d(msg.shard.labels, "int32");
      const { loss, grads, microBatches } = computeGrads(
        model!,
        x,
        { labels: y },
        crossEntropyBothHeads,
        msg.microBatches,
      );
      tf.dispose([x, y]);
      const weight = msg.shard.shape[0] / msg.totalBatch;
      const slots = new Float32Array(sab, 0, worldSize * numParams);
      const mine = slots.subarray(rank * numParams, (rank + 1) * numParams);
      names.forEach((n, i) => {
        const g = grads.get(n)!.dataSync() as Float32Array;
        const dst = mine.subarray(offsets[i], offsets[i] + g.length);
        for (let j = 0; j < g.length; j++) dst[j] = g[j] * weight;
      });
      tf.dispose([...grads.values()]);
      barrier(sab, worldSize);
      // Every worker reduces all slots in rank order: identical sums, identical updates.
      const total = new Float32Array(numParams);
      for (let r = 0; r < worldSize; r++) {
        const s = slots.subarray(r * numParams, (r + 1) * numParams);
        for (let j = 0; j < numParams; j++) total[j] += s[j];
      }
      barrier(sab, worldSize); // nobody overwrites a slot before everyone has read it
      const summed = new Map<string, tf.Tensor>();
      names.forEach((n, i) => {
        const v = model!.params.get(n)!;
        summed.set(n, tf.tensor(total.subarray(offsets[i], offsets[i] + v.size), v.shape, "float32"));
      });
      opt!.apply(summed, msg.lr);
      tf.dispose([...summed.values()]);
      post({ type: "step", id: msg.id, loss: loss * weight, microBatches });
      return;
    }
    case "predict": {
      const x = tf.tensor4d(msg.shard.x, msg.shard.shape);
      const logits = model!.predict(x);
      const data = (await logits.data()) as Float32Array;
      const classes = logits.shape[1];
      tf.dispose([x, logits]);
      post({ type: "predict", id: msg.id, logits: data, classes }, [data.buffer as ArrayBuffer]);
      return;
    }
    case "weights": {
      const out: Record<string, Float32Array> = {};
      for (const [k, v] of model!.params) out[k] = (v.dataSync() as Float32Array).slice();
      post({ type: "weights", id: msg.id, weights: out });
      return;
    }
    case "close":
      self.close();
  }
}

// Requests are handled strictly one after another.
let queue = Promise.resolve();
self.onmessage = (e: MessageEvent<Request>) => {
  queue = queue.then(() => handle(e.data)).catch((err: Error) => {
    // Expected failures (out of memory) travel as their message; anything else with its stack.
    const message = err.name === "OutOfMemoryError"
      ? `${err.name}: ${err.message}`
      : err.stack ?? err.message;
    post({ type: "error", id: (e.data as { id?: number }).id, message });
  });
};
