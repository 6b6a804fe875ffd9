/**
 * A data-parallel worker: one TensorFlow.js engine (its own wasm instance, so one core) holding a full
 * replica of the model, of its optimiser, and (for distillation) of the frozen teacher.
 *
 * A training step: the teacher's logits on this worker's shard (from its cache when the run keeps one and another
 * run already saw this shard: distill/teacher_cache.ts); gradients of the mean loss on the shard, scaled
 * by shard/total so that the sum over workers is the gradient of the whole batch's mean loss; written to this
 * worker's slot of the shared buffer; a barrier; then every worker adds the slots in rank order (the same
 * floats in the same order, so the same result everywhere), clips and applies the same update — replicas stay
 * identical without sending weights around.
 *
 * A single worker (one engine on a GPU, or one core) skips the exchange: forward, backward, clipping, AdamW and
 * EMA stay on the device, and the loss is read back only when the caller asks for it (every few steps), so a
 * step copies nothing but its batch to the device. Every read is asynchronous (`await t.data()`): tfjs's WebGPU
 * backend has no synchronous read under Deno.
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { blasThreadBudget, initBackend } from "../../accel/backend.ts";
import { countTraffic } from "../../accel/engine.ts";
import { setFastOps } from "../../accel/switch.ts";
import { AdamW, Ema, type Optimizer, readAll, Sgd } from "../optim.ts";
import { crossEntropyBothHeads, trainStep } from "../step.ts";
import type { LossFn, Targets, Teacher } from "../../distill/losses.ts";
import { distillLossFn } from "../../distill/modes.ts";
import { TeacherLogitCache } from "../../distill/teacher_cache.ts";
import { type AnyModel, buildModel } from "../../models/registry.ts";
import {
  BARRIER_BYTES,
  type InitMessage,
  type Reply,
  type Request,
  type Traffic,
  type WorkerState,
} from "./protocol.ts";

let model: AnyModel;
let opt: Optimizer;
let lossFn: LossFn;
let teacher: AnyModel | undefined;
let teacherCache: TeacherLogitCache | undefined;
let ema: Ema | undefined;
let init: InitMessage;
let names: string[] = [];
let offsets: number[] = [];
let bufNames: string[] = [];
let bufOffsets: number[] = [];
/** Each step's mean loss on this shard, on the device, not yet read back, and the shard's share of the batch. */
let unread: tf.Scalar[] = [];
let unreadWeights: number[] = [];

/** Parameters and buffers (BatchNorm running statistics) of the student. */
const buffersOf = (m: AnyModel) => (m as { buffers?: Map<string, tf.Variable> }).buffers ?? new Map();

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

function assignAll(vars: Map<string, tf.Variable>, values: Record<string, Float32Array>, what: string) {
  for (const [k, v] of vars) {
    const w = values[k];
    if (!w || w.length !== v.size) {
      throw new Error(`worker ${init.rank}: ${what} '${k}' missing or mis-sized`);
    }
    v.assign(tf.tensor(w, v.shape, "float32"));
  }
}

let traffic: Traffic | undefined;

/** The unread losses, read back in one transfer. */
async function readLosses(): Promise<number[]> {
  if (unread.length === 0) return [];
  const all = tf.stack(unread);
  const values = Array.from(await all.data(), (v, i) => v * unreadWeights[i]);
  tf.dispose([all, ...unread]);
  unread = [];
  unreadWeights = [];
  return values;
}

function layout(vars: Map<string, tf.Variable>): [string[], number[]] {
  const keys = [...vars.keys()];
  let o = 0;
  return [
    keys,
    keys.map((k) => {
      const at = o;
      o += vars.get(k)!.size;
      return at;
    }),
  ];
}

function setup(msg: InitMessage) {
  init = msg;
  model = buildModel(msg.student.name, msg.student.overrides, msg.seed + msg.rank);
  assignAll(model.params, msg.weights, "weight");
  assignAll(buffersOf(model), msg.weights, "buffer");
  [names, offsets] = layout(model.params);
  [bufNames, bufOffsets] = layout(buffersOf(model));
  const noDecay = new Set(msg.optim.noDecay);
  opt = msg.optim.type === "sgd"
    ? new Sgd(model.params, { momentum: msg.optim.momentum, weightDecay: msg.optim.weightDecay, noDecay })
    : new AdamW(model.params, {
      betas: msg.optim.betas,
      eps: msg.optim.eps,
      weightDecay: msg.optim.weightDecay,
      noDecay,
    });
  lossFn = msg.loss.kind === "distill"
    ? distillLossFn(msg.loss.mode, {
      smoothing: msg.loss.smoothing,
      alpha: msg.loss.alpha,
      tau: msg.loss.tau,
    })
    : crossEntropyBothHeads;
  if (msg.teacher) {
    teacher = buildModel(msg.teacher.name, msg.teacher.overrides);
    assignAll(teacher.params, msg.teacher.state, "teacher weight");
    const buffers = (teacher as { buffers?: Map<string, tf.Variable> }).buffers;
    if (buffers) assignAll(buffers, msg.teacher.state, "teacher buffer");
    const c = msg.teacher.cache;
    if (c) teacherCache = new TeacherLogitCache(c.dir, c.numClasses);
  }
  if (msg.emaDecay > 0 && msg.rank === 0) ema = new Ema(model.params, msg.emaDecay);
}

async function step(msg: Extract<Request, { type: "step" }>): Promise<Reply> {
  const { sab, worldSize, rank, numParams, numBuffers } = init;
  const { x: xs, shape, labels: ls, target: ts } = msg.shard;
  const weight = shape[0] / msg.totalBatch;
  const x = tf.tensor4d(xs, shape);
  const targets: Targets = { labels: tf.tensor1d(ls, "int32") };
  if (ts) targets.soft = tf.tensor2d(ts, [shape[0], ts.length / shape[0]]);
  // One engine: nothing to exchange, the gradients stay where they are (see the header).
  const onDevice = worldSize === 1 && !init.hostExchange;
  let result, stepTeacher: (Teacher & { cached?: boolean }) | undefined;
  try {
    stepTeacher = teacher && teacherCache ? await teacherCache.forBatch(teacher, x, xs) : teacher;
    result = await trainStep(model, opt, x, targets, {
      lr: msg.lr,
      clipGrad: init.clipGrad,
      ema,
      lossFn,
      microBatches: msg.microBatches,
      teacher: stepTeacher,
      exchange: onDevice
        ? undefined
        : (grads) => allReduce(grads, weight, sab, worldSize, rank, numParams, numBuffers),
    });
  } finally {
    tf.dispose([x, targets.labels, targets.soft!].filter(Boolean));
  }
  const { loss, microBatches } = result;
  unread.push(loss);
  unreadWeights.push(weight);
  const losses = msg.readLoss ? await readLosses() : [];
  return {
    type: "step",
    id: msg.id,
    losses,
    microBatches,
    ...(traffic ? { traffic: { ...traffic } } : {}),
    ...(stepTeacher && "cached" in stepTeacher ? { teacherCached: stepTeacher.cached } : {}),
  };
}

/**
 * Gradients (scaled by this shard's share of the batch) and BatchNorm running statistics summed over the
 * workers through the shared buffer: every worker adds the slots in rank order, so all get the same floats.
 * Disposes `grads`; returns the summed gradients as new tensors.
 */
async function allReduce(
  grads: Map<string, tf.Tensor>,
  weight: number,
  sab: SharedArrayBuffer,
  worldSize: number,
  rank: number,
  numParams: number,
  numBuffers: number,
): Promise<Map<string, tf.Tensor>> {
  const slot = numParams + numBuffers;
  const slots = new Float32Array(sab, 0, worldSize * slot);
  const mine = slots.subarray(rank * slot, (rank + 1) * slot);
  for (const [i, n] of names.entries()) {
    const g = (await grads.get(n)!.data()) as Float32Array;
    const dst = mine.subarray(offsets[i], offsets[i] + g.length);
    for (let j = 0; j < g.length; j++) dst[j] = g[j] * weight;
  }
  tf.dispose([...grads.values()]);
  // BatchNorm running statistics, updated by this shard's forward pass, are averaged over the workers (the
  // replicas would drift apart otherwise).
  for (const [i, n] of bufNames.entries()) {
    const b = (await buffersOf(model).get(n)!.data()) as Float32Array;
    const dst = mine.subarray(numParams + bufOffsets[i], numParams + bufOffsets[i] + b.length);
    for (let j = 0; j < b.length; j++) dst[j] = b[j] / worldSize;
  }
  barrier(sab, worldSize);
  // Every worker reduces all slots in rank order: identical sums, identical updates.
  const total = new Float32Array(slot);
  for (let r = 0; r < worldSize; r++) {
    const s = slots.subarray(r * slot, (r + 1) * slot);
    for (let j = 0; j < slot; j++) total[j] += s[j];
  }
  barrier(sab, worldSize); // nobody overwrites a slot before everyone has read it
  bufNames.forEach((n, i) => {
    const v = buffersOf(model).get(n)!;
    v.assign(
      tf.tensor(total.subarray(numParams + bufOffsets[i], numParams + bufOffsets[i] + v.size), v.shape),
    );
  });
  const summed = new Map<string, tf.Tensor>();
  names.forEach((n, i) => {
    const v = model.params.get(n)!;
    summed.set(n, tf.tensor(total.subarray(offsets[i], offsets[i] + v.size), v.shape, "float32"));
  });
  return summed;
}

async function handle(msg: Request) {
  switch (msg.type) {
    case "init":
      // The parent's op switch (lib/accel/switch.ts), before any model is built.
      setFastOps(msg.fastOps);
      // BLAS threads are process-wide: the workers share the cores between them.
      await initBackend(msg.backend, {
        stockKernels: msg.stockKernels,
        matmul: msg.matmul,
        blasThreads: Math.max(1, Math.floor(blasThreadBudget() / msg.worldSize)),
      });
      if (msg.countTraffic) traffic = countTraffic();
      setup(msg);
      post({ type: "ready", rank: msg.rank });
      return;
    case "step":
      post(await step(msg));
      return;
    case "losses":
      post({ type: "losses", id: msg.id, losses: await readLosses() });
      return;
    case "predict": {
      const x = tf.tensor4d(msg.shard.x, msg.shard.shape);
      const logits = tf.tidy(() => {
        const out = model.forward(x);
        if (msg.head === "cls" || !out.dist) return out.cls;
        return msg.head === "dist" ? out.dist : tf.div(tf.add(out.cls, out.dist), 2);
      });
      const data = (await logits.data()) as Float32Array;
      const classes = logits.shape[1]!;
      tf.dispose([x, logits]);
      post({ type: "predict", id: msg.id, logits: data, classes }, [data.buffer as ArrayBuffer]);
      return;
    }
    case "getState": {
      const state: WorkerState = {
        weights: { ...(await readAll(model.params)), ...(await readAll(buffersOf(model))) },
        optim: await opt.getState(),
        rng: model.rng.state,
      };
      if (ema) state.ema = await readAll(ema.shadow);
      post({ type: "getState", id: msg.id, state });
      return;
    }
    case "setState": {
      const s = msg.state;
      assignAll(model.params, s.weights, "weight");
      assignAll(buffersOf(model), s.weights, "buffer");
      opt.setState(s.optim);
      if (s.ema && ema) assignAll(ema.shadow, s.ema, "EMA weight");
      model.rng.state = s.rng;
      post({ type: "setState", id: msg.id });
      return;
    }
    case "close":
      // Free the engine's memory and device first: a GPU device torn down with the thread has crashed Deno.
      tf.disposeVariables();
      tf.engine().reset();
      post({ type: "closed", id: msg.id });
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
