/**
 * RegNetY (Radosavovic et al. 2020, "Designing Network Design Spaces"), the convnet teachers of DeiT's Table 2,
 * as timm builds them (`timm/models/regnet.py`, which DeiT's `regnety_160` checkpoint was trained with):
 *
 *   stem: 3×3 conv stride 2 (no bias) → BN → ReLU
 *   4 stages of bottleneck blocks:  1×1 conv-BN-ReLU → grouped 3×3 conv-BN-ReLU (stride 2 in a stage's first
 *   block) → squeeze-excitation → 1×1 conv-BN;  + shortcut (1×1 conv stride s + BN where the shape changes);
 *   ReLU after the sum
 *   global average pool → linear head
 *
 * The per-block widths come from the RegNet generator: a linear ramp u_j = w0 + wa·j over the blocks,
 * quantised to powers of wm (log-rounded) and to multiples of 8, blocks of equal width forming a stage; the
 * bottleneck width is then made a multiple of the group width. Rounding follows numpy/Python (half to even).
 *
 * Inputs are NHWC `[B, H, W, 3]`, normalised; outputs `{cls}` logits like the ViT's. BatchNorm: eval mode uses
 * the running statistics (folded into the preceding convolution); training mode normalises with the batch
 * statistics and updates running_mean / running_var (momentum 0.1, unbiased variance) and
 * num_batches_tracked, as PyTorch does. State-dict keys are timm's (`stem.conv.weight`, `s1.b1.conv2.bn.*`,
 * `s1.b1.se.fc1.*`, `s1.b1.downsample.conv.weight`, `head.fc.*`, …).
 */
import { hwioToOihw, oihwToHwio, transpose2d } from "../io/layout.ts";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../base/rng.ts";
import type { Loadable } from "../io/checkpoint.ts";
import { linear } from "../vit/layers.ts";
import type { Logits } from "../vit/model.ts";
import {
  batchNormAffine,
  batchNormTrain,
  type BatchStats,
  conv2d,
  conv2dInference,
  convOutSize,
  globalAvgPool,
} from "./conv.ts";

export interface RegNetConfig {
  /** Blocks in all (the generator's d). */
  depth: number;
  /** Initial width w0 (a multiple of 8). */
  w0: number;
  /** Width slope wa. */
  wa: number;
  /** Width multiplier wm (> 1): stage widths are w0·wm^k, quantised. */
  wm: number;
  /** Channels per group of the 3×3 convolutions. */
  groupSize: number;
  /** Bottleneck ratio b (RegNet: 1). */
  bottleneckRatio: number;
  /** Squeeze-excitation width = round(block input width · seRatio); 0: no SE (RegNetX). */
  seRatio: number;
  stemWidth: number;
  /** Classes of `head.fc`. */
  numClasses: number;
  inChans: number;
  /** Resolution the model is evaluated at (the eval transform's crop); any input size works. */
  imgSize: number;
  /** BatchNorm epsilon and momentum (PyTorch's defaults). */
  bnEps: number;
  bnMomentum: number;
}

export const REGNET_DEFAULTS: RegNetConfig = {
  depth: 21,
  w0: 80,
  wa: 42.63,
  wm: 2.66,
  groupSize: 24,
  bottleneckRatio: 1,
  seRatio: 0.25,
  stemWidth: 32,
  numClasses: 1000,
  inChans: 3,
  imgSize: 224,
  bnEps: 1e-5,
  bnMomentum: 0.1,
};

/** A complete config from a partial one; checks the generator's preconditions. */
export function resolveRegNetConfig(partial: Partial<RegNetConfig>): RegNetConfig {
  const c = { ...REGNET_DEFAULTS, ...partial };
  const bad = (msg: string) => {
    throw new Error(`invalid RegNet config: ${msg}`);
  };
  for (const k of ["depth", "w0", "groupSize", "stemWidth", "inChans", "imgSize"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (!Number.isInteger(c.numClasses) || c.numClasses < 0) bad(`numClasses must be ≥ 0, got ${c.numClasses}`);
  if (!(c.wa >= 0)) bad(`wa must be ≥ 0, got ${c.wa}`);
  if (!(c.wm > 1)) bad(`wm must be > 1, got ${c.wm}`);
  if (c.w0 % 8 !== 0) bad(`w0 must be a multiple of 8, got ${c.w0}`);
  if (!(c.bottleneckRatio > 0)) bad(`bottleneckRatio must be > 0, got ${c.bottleneckRatio}`);
  if (!(c.seRatio >= 0)) bad(`seRatio must be ≥ 0, got ${c.seRatio}`);
  return c;
}

/** numpy's / Python 3's round(): to the nearest integer, halves to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface RegNetStage {
  /** `s1` … `s4`. */
  name: string;
  /** Output width of every block of the stage. */
  width: number;
  depth: number;
  stride: number;
  /** Group width after the compatibility adjustment. */
  groupSize: number;
}

/** The stages timm's generator produces (generate_regnet + adjust_widths_groups_comp, output stride 32). */
export function regnetStages(c: RegNetConfig): RegNetStage[] {
  const q = 8;
  const widths: number[] = [];
  for (let j = 0; j < c.depth; j++) {
    const cont = j * c.wa + c.w0;
    const exp = roundHalfEven(Math.log(cont / c.w0) / Math.log(c.wm));
    widths.push(roundHalfEven((c.w0 * Math.pow(c.wm, exp)) / q) * q);
  }
  // np.unique: sorted distinct widths with their counts.
  const distinct = [...new Set(widths)].sort((a, b) => a - b);
  let netStride = 2;
  return distinct.map((w, i) => {
    const stride = netStride >= 32 ? 1 : 2; // output stride 32: later stages would dilate (never in the zoo)
    netStride *= stride;
    if (stride === 1) throw new Error(`RegNet with more than 4 stages (dilation) is not supported`);
    // adjust_widths_groups_comp: bottleneck width a multiple of the group width (Python round).
    const b = c.bottleneckRatio;
    let wBot = Math.trunc(w * b);
    const gs = Math.min(c.groupSize, wBot);
    wBot = Math.trunc(roundHalfEven(wBot / gs) * gs);
    return {
      name: `s${i + 1}`,
      width: Math.trunc(wBot / b),
      depth: widths.filter((x) => x === w).length,
      stride,
      groupSize: gs,
    };
  });
}

export interface RegNetBlock {
  /** `s2.b1` etc. */
  prefix: string;
  inChs: number;
  outChs: number;
  stride: number;
  bottleneck: number;
  groups: number;
  /** Squeeze-excitation width (0: none). */
  seChs: number;
  /** A projection shortcut (1×1 conv + BN) where the shape changes; identity otherwise. */
  downsample: boolean;
}

export function regnetBlocks(c: RegNetConfig): RegNetBlock[] {
  const blocks: RegNetBlock[] = [];
  let prev = c.stemWidth;
  for (const st of regnetStages(c)) {
    for (let i = 0; i < st.depth; i++) {
      const inChs = i === 0 ? prev : st.width, stride = i === 0 ? st.stride : 1;
      const bottleneck = roundHalfEven(st.width * c.bottleneckRatio);
      blocks.push({
        prefix: `${st.name}.b${i + 1}`,
        inChs,
        outChs: st.width,
        stride,
        bottleneck,
        groups: Math.floor(bottleneck / st.groupSize),
        seChs: c.seRatio > 0 ? roundHalfEven(inChs * c.seRatio) : 0,
        downsample: inChs !== st.width || stride !== 1,
      });
    }
    prev = st.width;
  }
  return blocks;
}

const BN_BUFFERS = ["running_mean", "running_var", "num_batches_tracked"] as const;

export function isBufferName(name: string): boolean {
  return /\.(running_mean|running_var|num_batches_tracked)$/.test(name);
}

/**
 * Every state-dict entry (parameters and BatchNorm buffers) with its shape **as timm stores it** (conv
 * `[out, in/groups, kh, kw]`, Linear `[out, in]`, num_batches_tracked `[]`), in timm's order.
 */
export function regnetStateShapes(c: RegNetConfig): Map<string, number[]> {
  const s = new Map<string, number[]>();
  const convBn = (prefix: string, out: number, inPerGroup: number, k: number) => {
    s.set(`${prefix}.conv.weight`, [out, inPerGroup, k, k]);
    s.set(`${prefix}.bn.weight`, [out]);
    s.set(`${prefix}.bn.bias`, [out]);
    for (const b of BN_BUFFERS) s.set(`${prefix}.bn.${b}`, b === "num_batches_tracked" ? [] : [out]);
  };
  convBn("stem", c.stemWidth, c.inChans, 3);
  let last = c.stemWidth;
  for (const b of regnetBlocks(c)) {
    const p = b.prefix;
    convBn(`${p}.conv1`, b.bottleneck, b.inChs, 1);
    convBn(`${p}.conv2`, b.bottleneck, b.bottleneck / b.groups, 3);
    if (b.seChs > 0) {
      s.set(`${p}.se.fc1.weight`, [b.seChs, b.bottleneck, 1, 1]);
      s.set(`${p}.se.fc1.bias`, [b.seChs]);
      s.set(`${p}.se.fc2.weight`, [b.bottleneck, b.seChs, 1, 1]);
      s.set(`${p}.se.fc2.bias`, [b.bottleneck]);
    }
    convBn(`${p}.conv3`, b.outChs, b.bottleneck, 1);
    if (b.downsample) convBn(`${p}.downsample`, b.outChs, b.inChs, 1);
    last = b.outChs;
  }
  if (c.numClasses > 0) {
    s.set("head.fc.weight", [c.numClasses, last]);
    s.set("head.fc.bias", [c.numClasses]);
  }
  return s;
}

/** Trainable parameters only (what timm's `sum(p.numel() for p in model.parameters())` counts). */
export function regnetParamShapes(c: RegNetConfig): Map<string, number[]> {
  return new Map([...regnetStateShapes(c)].filter(([k]) => !isBufferName(k)));
}

/**
 * Multiply-accumulates of one forward pass at `size`×`size`, in G (the RegNet paper's "flops"): every
 * convolution (k²·Cin/G·Cout per output pixel), the SE and head matmuls; BN, activations, pooling and
 * additions left out.
 */
export function regnetGFlops(c: RegNetConfig, size = c.imgSize): number {
  let h = convOutSize(size, 3, 2, 1);
  let macs = h * h * 9 * c.inChans * c.stemWidth;
  let last = c.stemWidth;
  for (const b of regnetBlocks(c)) {
    const ho = convOutSize(h, 3, b.stride, 1);
    macs += h * h * b.inChs * b.bottleneck; // conv1
    macs += ho * ho * 9 * (b.bottleneck / b.groups) * b.bottleneck; // conv2
    macs += 2 * b.bottleneck * b.seChs; // se
    macs += ho * ho * b.bottleneck * b.outChs; // conv3
    if (b.downsample) macs += ho * ho * b.inChs * b.outChs;
    h = ho;
    last = b.outChs;
  }
  return (macs + last * c.numClasses) / 1e9;
}

export interface RegNetForwardOptions {
  /** Training mode: BatchNorm uses (and updates the running averages with) the batch statistics. */
  training?: boolean;
}

type Conv = { k: number; stride?: number; pad?: number; groups?: number };

export class RegNet implements Loadable {
  readonly config: RegNetConfig;
  readonly blocks: readonly RegNetBlock[];
  /** timm name → trainable weight in internal layout (conv `[kh, kw, in/groups, out]`, Linear `[in, out]`). */
  readonly params: Map<string, tf.Variable>;
  /** BatchNorm running_mean / running_var / num_batches_tracked (float32 variables, not trainable). */
  readonly buffers: Map<string, tf.Variable>;
  /** num_batches_tracked may be absent from a checkpoint (timm's re-saved weights, this project's fixtures). */
  readonly optionalKeys: ReadonlySet<string>;
  readonly headNames = ["head.fc.weight", "head.fc.bias"];
  readonly rng: Rng;
  /** Set while `predict` runs: eval mode through the stock fused kernels (no gradients needed). */
  #inference = false;

  /** A model with timm's initialisation, seeded. */
  constructor(config: Partial<RegNetConfig>, opts: { seed?: number } = {}) {
    this.config = resolveRegNetConfig(config);
    this.blocks = regnetBlocks(this.config);
    this.rng = new Rng(opts.seed ?? 0);
    const { params, buffers } = initState(this.config, this.blocks, this.rng);
    this.params = params;
    this.buffers = buffers;
    this.optionalKeys = new Set([...buffers.keys()].filter((k) => k.endsWith(".num_batches_tracked")));
  }

  get numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  #p(name: string): tf.Tensor {
    const v = this.params.get(name) ?? this.buffers.get(name);
    if (!v) throw new Error(`model has no tensor '${name}'`);
    return v;
  }

  /** conv (no bias) → BatchNorm (→ ReLU). */
  #convBn(x: tf.Tensor4D, prefix: string, o: Conv, relu: boolean, training: boolean): tf.Tensor4D {
    const w = this.#p(`${prefix}.conv.weight`) as tf.Tensor4D;
    const bn = (n: string) => this.#p(`${prefix}.bn.${n}`) as tf.Tensor1D;
    const eps = this.config.bnEps;
    const opts = { stride: o.stride ?? 1, pad: o.pad ?? 0, groups: o.groups ?? 1 };
    if (training) {
      const y = batchNormTrain(
        conv2d(x, w, opts),
        bn("weight"),
        bn("bias"),
        eps,
        (s) => this.#track(prefix, s),
      );
      return relu ? tf.relu(y) : y;
    }
    // Eval: the BN folded into the convolution (the filter's output channels are its last axis) + a bias.
    const bnw = bn("weight"), bnb = bn("bias");
    const { scale, shift } = batchNormAffine(bnw, bnb, bn("running_mean"), bn("running_var"), eps);
    const folded = tf.mul(w, scale) as tf.Tensor4D;
    if (this.#inference) return conv2dInference(x, folded, opts, shift, relu);
    const y = conv2d(x, folded, opts, shift);
    return relu ? tf.relu(y) : y;
  }

  /** PyTorch's running-average update: momentum m, unbiased batch variance; num_batches_tracked += 1. */
  #track(prefix: string, s: BatchStats): void {
    const m = this.config.bnMomentum;
    const rm = this.buffers.get(`${prefix}.bn.running_mean`)!;
    const rv = this.buffers.get(`${prefix}.bn.running_var`)!;
    const nb = this.buffers.get(`${prefix}.bn.num_batches_tracked`)!;
    const n = s.count;
    if (n < 2) throw new Error(`BatchNorm ${prefix}: training needs more than 1 value per channel, got ${n}`);
    tf.tidy(() => {
      rm.assign(tf.add(tf.mul(rm, 1 - m), tf.mul(s.mean, m)));
      rv.assign(tf.add(tf.mul(rv, 1 - m), tf.mul(s.variance, (m * n) / (n - 1))));
      nb.assign(tf.add(nb, 1));
    });
  }

  #se(x: tf.Tensor4D, prefix: string): tf.Tensor4D {
    const [B, , , C] = x.shape;
    const w1 = this.#p(`${prefix}.fc1.weight`), w2 = this.#p(`${prefix}.fc2.weight`);
    const r = w1.shape[3] as number;
    const pooled = globalAvgPool(x);
    const z = tf.relu(
      linear(pooled, tf.reshape(w1, [C, r]), this.#p(`${prefix}.fc1.bias`) as tf.Tensor1D),
    ) as tf.Tensor2D;
    const gate = tf.sigmoid(linear(z, tf.reshape(w2, [r, C]), this.#p(`${prefix}.fc2.bias`) as tf.Tensor1D));
    return tf.mul(x, tf.reshape(gate, [B, 1, 1, C]));
  }

  #block(x: tf.Tensor4D, b: RegNetBlock, training: boolean): tf.Tensor4D {
    const p = b.prefix;
    let h = this.#convBn(x, `${p}.conv1`, { k: 1 }, true, training);
    h = this.#convBn(h, `${p}.conv2`, { k: 3, stride: b.stride, pad: 1, groups: b.groups }, true, training);
    if (b.seChs > 0) h = this.#se(h, `${p}.se`);
    h = this.#convBn(h, `${p}.conv3`, { k: 1 }, false, training);
    const shortcut = b.downsample
      ? this.#convBn(x, `${p}.downsample`, { k: 1, stride: b.stride }, false, training)
      : x;
    return tf.relu(tf.add(h, shortcut));
  }

  /** Pooled features `[B, C]` (after the last stage and global average pooling). */
  forwardFeatures(x: tf.Tensor4D, opts: RegNetForwardOptions = {}): tf.Tensor2D {
    const training = opts.training ?? false;
    if (x.shape[3] !== this.config.inChans) {
      throw new Error(`input has ${x.shape[3]} channels, the model expects ${this.config.inChans} (NHWC)`);
    }
    let h = this.#convBn(x, "stem", { k: 3, stride: 2, pad: 1 }, true, training);
    for (const b of this.blocks) h = this.#block(h, b, training);
    return globalAvgPool(h);
  }

  /** Logits `{cls}` `[B, classes]` for `[B, H, W, C]` input. Training mode updates the BN running stats. */
  forward(x: tf.Tensor4D, opts: RegNetForwardOptions = {}): Logits {
    if (this.config.numClasses === 0) throw new Error("this model has no head (numClasses 0)");
    return tf.tidy(() => {
      const f = this.forwardFeatures(x, opts);
      return {
        cls: linear(f, this.#p("head.fc.weight") as tf.Tensor2D, this.#p("head.fc.bias") as tf.Tensor1D),
      };
    });
  }

  /**
   * Eval-mode logits (running BatchNorm statistics), the fast way: the same function as
   * `forward(x, {training: false})`, through fused conv + bias + ReLU kernels that have no gradient on wasm.
   */
  predict(x: tf.Tensor4D): tf.Tensor2D {
    this.#inference = true;
    try {
      return this.forward(x, { training: false }).cls;
    } finally {
      this.#inference = false;
    }
  }

  // --- checkpoint interface (see lib/io/checkpoint.ts) ---

  torchShapes(): Map<string, number[]> {
    return regnetStateShapes(this.config);
  }

  toInternal(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
    return toInternal(name, torchShape, data);
  }

  toTorch(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
    return toTorch(name, torchShape, data);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    for (const v of this.buffers.values()) v.dispose();
    this.params.clear();
    this.buffers.clear();
  }
}

// --- layout: PyTorch ↔ internal ----------------------------------------------------------------------------

/** Internal shape: conv `[O, I, kh, kw]` → `[kh, kw, I, O]`; Linear `[out, in]` → `[in, out]`; others as is. */
export function internalShape(torchShape: readonly number[]): number[] {
  if (torchShape.length === 4) {
    const [O, I, kh, kw] = torchShape;
    return [kh, kw, I, O];
  }
  if (torchShape.length === 2) return [torchShape[1], torchShape[0]];
  return [...torchShape];
}

export function toInternal(_name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  if (torchShape.length === 4) return oihwToHwio(data, torchShape);
  if (torchShape.length === 2) return transpose2d(data, torchShape[0], torchShape[1]);
  return data;
}

export function toTorch(_name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  if (torchShape.length === 4) return hwioToOihw(data, torchShape);
  if (torchShape.length === 2) return transpose2d(data, torchShape[1], torchShape[0]);
  return data;
}

/**
 * timm's RegNet initialisation (`_init_weights`, zero_init_last): conv weights N(0, √(2 / fan_out)) with
 * fan_out = kh·kw·out/groups, conv biases 0; BN weight 1, bias 0, except the last BN of every block (conv3.bn)
 * whose weight is 0; Linear N(0, 0.01), bias 0. Buffers: running_mean 0, running_var 1, num_batches_tracked 0.
 */
function initState(c: RegNetConfig, blocks: readonly RegNetBlock[], rng: Rng) {
  const groupsOf = new Map<string, number>(blocks.map((b) => [`${b.prefix}.conv2.conv.weight`, b.groups]));
  const params = new Map<string, tf.Variable>(), buffers = new Map<string, tf.Variable>();
  for (const [name, torchShape] of regnetStateShapes(c)) {
    const shape = internalShape(torchShape);
    const t = tf.tidy(() => {
      if (name.endsWith(".running_var")) return tf.ones(shape);
      if (name.endsWith(".running_mean") || name.endsWith(".num_batches_tracked")) return tf.zeros(shape);
      if (/\.bn\.weight$/.test(name)) {
        return name.endsWith(".conv3.bn.weight") ? tf.zeros(shape) : tf.ones(shape);
      }
      if (name.endsWith(".bias")) return tf.zeros(shape);
      if (torchShape.length === 2) return tf.randomNormal(shape, 0, 0.01, "float32", rng.nextSeed());
      const [O, , kh, kw] = torchShape;
      const fanOut = (kh * kw * O) / (groupsOf.get(name) ?? 1);
      return tf.randomNormal(shape, 0, Math.sqrt(2 / fanOut), "float32", rng.nextSeed());
    });
    const v = tf.variable(t, !isBufferName(name));
    t.dispose();
    (isBufferName(name) ? buffers : params).set(name, v);
  }
  return { params, buffers };
}
