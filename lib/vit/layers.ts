/**
 * The ViT's layers, as timm writes them: Linear, LayerNorm, GELU, dropout, DropPath, Attention, Mlp, Block.
 *
 * Each layer's forward is the readable formulation, unless the op switch (lib/accel/switch.ts, on by default)
 * hands the op to its fast implementation in lib/accel/ops.ts — the same function with hand-written
 * gradients and backend kernels. Change a layer here and either change its fast op to match or switch the
 * fast ops off (`setFastOps(false)`, `DEIT_OPS=reference`); tests/fast_paths_test.ts compares the two paths.
 *
 * Weights live in the model's parameter map under timm's names and are looked up at every call; Linear weights
 * are kept as `[in, out]` (the transpose of PyTorch's `[out, in]`) so that the forward pass is a plain matmul.
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../base/rng.ts";
import {
  attentionCore,
  type AttentionShape,
  dense,
  gelu as fastGelu,
  layerNorm as fastLayerNorm,
} from "../accel/ops.ts";
import { fastOps } from "../accel/switch.ts";
import type { ViTConfig } from "./config.ts";

/** Looks a parameter up by its timm name. */
export type ParamGetter = (name: string) => tf.Tensor;

/** What a forward pass needs besides its input: training mode (dropout, drop path) and their randomness. */
export interface ForwardContext {
  training: boolean;
  rng: Rng;
}

/** y = x·W + b for x `[M, in]`, W `[in, out]`, b `[out]` → `[M, out]`. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (fastOps()) return dense(x, w, b);
  const y = tf.matMul(x, w) as tf.Tensor2D;
  return b ? tf.add(y, b) : y;
}

/** nn.Linear on `[..., in]` → `[..., out]`. */
export class Linear {
  constructor(readonly p: ParamGetter, readonly name: string, readonly bias = true) {}

  forward<T extends tf.Tensor>(x: T): T {
    const w = this.p(this.name + ".weight") as tf.Tensor2D;
    const b = this.bias ? this.p(this.name + ".bias") as tf.Tensor1D : undefined;
    if (x.rank === 2) return linear(x as tf.Tensor as tf.Tensor2D, w, b) as tf.Tensor as T;
    const [inF, outF] = w.shape;
    const y = linear(tf.reshape(x, [-1, inF]), w, b);
    return tf.reshape(y, [...x.shape.slice(0, -1), outF]) as T;
  }
}

/** nn.LayerNorm over the last axis: (x − mean) / √(var + eps) · weight + bias, with the biased variance. */
export class LayerNorm {
  constructor(readonly p: ParamGetter, readonly name: string, readonly eps: number) {}

  forward<T extends tf.Tensor>(x: T): T {
    const w = this.p(this.name + ".weight") as tf.Tensor1D, b = this.p(this.name + ".bias") as tf.Tensor1D;
    if (fastOps()) return fastLayerNorm(x, w, b, this.eps) as T;
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
    return tf.add(tf.mul(xhat, w), b);
  }
}

/** The exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) — not the tanh approximation (timm's nn.GELU default). */
export function gelu<T extends tf.Tensor>(x: T): T {
  if (fastOps()) return fastGelu(x) as T;
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** Standard (inverted) dropout; identity when not training or rate 0. */
export function dropout<T extends tf.Tensor>(x: T, rate: number, ctx: ForwardContext): T {
  if (!ctx.training || rate === 0) return x;
  return tf.dropout(x, rate, undefined, ctx.rng.nextSeed()) as T;
}

/**
 * Stochastic depth on a residual branch `[B, ...]`: each sample's branch is kept with probability 1 − rate,
 * as `x / keep · floor(keep + U[0,1))` (timm's drop_path).
 */
export function dropPath<T extends tf.Tensor>(x: T, rate: number, ctx: ForwardContext): T {
  if (!ctx.training || rate === 0) return x;
  const keep = 1 - rate;
  const maskShape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
  const mask = tf.floor(tf.add(tf.randomUniform(maskShape, 0, 1, "float32", ctx.rng.nextSeed()), keep));
  return tf.mul(tf.div(x, keep), mask);
}

/**
 * Multi-head self-attention, `[B, T, D]` → `[B, T, D]`: one qkv projection whose output splits as
 * [q | k | v], each split by head; softmax(q·kᵀ·scale)·v per head; output projection; dropout.
 */
export class Attention {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(
    p: ParamGetter,
    prefix: string,
    readonly numHeads: number,
    qkvBias: boolean,
    readonly drop: number,
  ) {
    this.qkv = new Linear(p, prefix + ".qkv", qkvBias);
    this.proj = new Linear(p, prefix + ".proj");
  }

  /** When `keep` is given, the attention probabilities `[B, heads, T, T]` are pushed to it (kept). */
  forward(x: tf.Tensor3D, ctx: ForwardContext, keep?: tf.Tensor4D[]): tf.Tensor3D {
    const [B, T, D] = x.shape;
    const s: AttentionShape = { batch: B, tokens: T, heads: this.numHeads, headDim: D / this.numHeads };
    const qkv = this.qkv.forward(tf.reshape(x, [B * T, D]) as tf.Tensor2D); // [B·T, 3D]
    const o = fastOps() ? attentionCore(qkv, s, keep) : this.attend(qkv, s, keep);
    return tf.reshape(dropout(this.proj.forward(o), this.drop, ctx), [B, T, D]);
  }

  /** The attention itself on qkv `[B·T, 3D]` → `[B·T, D]` (heads side by side): softmax(q·kᵀ·scale)·v. */
  attend(qkv: tf.Tensor2D, s: AttentionShape, keep?: tf.Tensor4D[]): tf.Tensor2D {
    const { batch: B, tokens: T, heads: H, headDim: hd } = s;
    // [B, T, 3, H, hd] → [3, B, H, T, hd]
    const parts = tf.transpose(tf.reshape(qkv, [B, T, 3, H, hd]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.unstack(parts).map((t) => tf.reshape(t, [B * H, T, hd]) as tf.Tensor3D);
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)); // [B·H, T, T]
    const probs = tf.softmax(scores);
    if (keep) keep.push(tf.keep(tf.reshape(probs, [B, H, T, T])));
    const o = tf.matMul(probs, v); // [B·H, T, hd]
    return tf.reshape(tf.transpose(tf.reshape(o, [B, H, T, hd]), [0, 2, 1, 3]), [B * T, H * hd]);
  }
}

/** fc1 → GELU → dropout → fc2 → dropout. */
export class Mlp {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(p: ParamGetter, prefix: string, readonly drop: number) {
    this.fc1 = new Linear(p, prefix + ".fc1");
    this.fc2 = new Linear(p, prefix + ".fc2");
  }

  forward<T extends tf.Tensor>(x: T, ctx: ForwardContext): T {
    const h = dropout(gelu(this.fc1.forward(x)), this.drop, ctx);
    return dropout(this.fc2.forward(h), this.drop, ctx);
  }
}

/** A pre-norm transformer block: x + DropPath(Attention(LayerNorm(x))), then x + DropPath(Mlp(LayerNorm(x))). */
export class Block {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(p: ParamGetter, prefix: string, c: ViTConfig, readonly dropPathRate: number) {
    this.norm1 = new LayerNorm(p, prefix + ".norm1", c.layerNormEps);
    this.attn = new Attention(p, prefix + ".attn", c.numHeads, c.qkvBias, c.dropRate);
    this.norm2 = new LayerNorm(p, prefix + ".norm2", c.layerNormEps);
    this.mlp = new Mlp(p, prefix + ".mlp", c.dropRate);
  }

  /** `[B, T, D]` → `[B, T, D]`; `keep` as {@link Attention.forward}'s. */
  forward(x: tf.Tensor3D, ctx: ForwardContext, keep?: tf.Tensor4D[]): tf.Tensor3D {
    x = tf.add(x, dropPath(this.attn.forward(this.norm1.forward(x), ctx, keep), this.dropPathRate, ctx));
    x = tf.add(x, dropPath(this.mlp.forward(this.norm2.forward(x), ctx), this.dropPathRate, ctx));
    return x;
  }
}
