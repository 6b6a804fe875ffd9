/**
 * The Vision Transformer as DeiT uses it (timm's VisionTransformer, with DeiT's distillation token as an
 * option rather than a fork):
 *
 *   patches → linear embedding → prepend [cls] (and [dist]) → + position embedding → blocks → LayerNorm
 *   → head(token 0) (and head_dist(token 1))
 *
 * Inputs are NHWC `[B, H, W, C]`, already normalised; outputs are logits. `forward` returns `{cls, dist?}`
 * in every mode; `inferenceLogits` applies DeiT's rule for the distilled model ((cls + dist) / 2 on logits).
 * The layers (layers.ts) ask the op switch (lib/accel/switch.ts) whether to run their fast ops.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../base/rng.ts";
import { tokenCounts, type ViTConfig, vitConfig, vitParamShapes } from "./config.ts";
import { Block, dropout, type ForwardContext, LayerNorm, Linear, type ParamGetter } from "./layers.ts";
import { internalShape, toInternal, toTorch } from "./torch_layout.ts";
import { resamplePosEmbed } from "./posembed.ts";
import type { HostTensor } from "../io/tensor.ts";
import type { Loadable } from "../io/checkpoint.ts";

export interface ForwardOptions {
  /** Training mode: stochastic depth and dropout active. */
  training?: boolean;
  /** Randomness for stochastic depth / dropout; defaults to the model's own generator. */
  rng?: Rng;
}

// A type alias (not an interface) so that it is a tf.TensorContainer and can leave tf.tidy.
export type Logits = {
  /** Class-token head `[B, classes]`. */
  cls: tf.Tensor2D;
  /** Distillation-token head `[B, classes]`, only for distilled models. */
  dist?: tf.Tensor2D;
};

export interface FeatureOptions extends ForwardOptions {
  /** Also return the tokens after every block (before the final norm), `[B, T, D]` each. */
  blockTokens?: boolean;
  /** Also return every block's attention probabilities, `[B, heads, T, T]` each. */
  attention?: boolean;
}

export interface Features {
  /** All tokens after the final LayerNorm, `[B, T, D]`, T = prefix + patches. */
  tokens: tf.Tensor3D;
  blocks?: tf.Tensor3D[];
  attention?: tf.Tensor4D[];
}

/** DeiT's inference rule: the distilled model averages the two heads' logits (the code; not softmaxes). */
export function inferenceLogits(out: Logits): tf.Tensor2D {
  return out.dist ? tf.div(tf.add(out.cls, out.dist), 2) : out.cls;
}

/** timm: drop-path rate rises linearly from 0 (first block) to dropPathRate (last block). */
export function dropPathRates(c: ViTConfig): number[] {
  if (c.depth === 1) return [0];
  return Array.from({ length: c.depth }, (_, i) => (c.dropPathRate * i) / (c.depth - 1));
}

export class VisionTransformer implements Loadable {
  readonly config: ViTConfig;
  /** timm name → weight in internal layout (Linear `[in, out]`, patch embedding `[p·p·C, D]`). */
  readonly params: Map<string, tf.Variable>;
  readonly rng: Rng;
  readonly #p: ParamGetter;
  readonly #patchProj: Linear;
  /** The transformer blocks, in order (timm's `blocks`). */
  readonly blocks: Block[];
  readonly #norm: LayerNorm;
  readonly #head: Linear;
  readonly #headDist: Linear;

  /** A model with timm's initialisation, seeded. */
  constructor(config: Partial<ViTConfig>, opts: { seed?: number } = {}) {
    const c = this.config = vitConfig(config);
    this.rng = new Rng(opts.seed ?? 0);
    this.params = initParams(c, this.rng);
    const p = this.#p = (name) => {
      const v = this.params.get(name);
      if (!v) throw new Error(`model has no parameter '${name}'`);
      return v;
    };
    this.#patchProj = new Linear(p, "patch_embed.proj");
    const rates = dropPathRates(c);
    this.blocks = rates.map((rate, i) => new Block(p, `blocks.${i}`, c, rate));
    this.#norm = new LayerNorm(p, "norm", c.layerNormEps);
    this.#head = new Linear(p, "head");
    this.#headDist = new Linear(p, "head_dist");
  }

  get numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Names of the trainable weights, in timm's order. */
  get paramNames(): string[] {
    return [...this.params.keys()];
  }

  /** `[B, H, W, C]` → patch tokens `[B·N, D]` (row-major grid order, as the stride-p convolution). */
  patchEmbed(x: tf.Tensor4D): tf.Tensor2D {
    const c = this.config, p = c.patchSize, g = c.imgSize / p;
    const [B, H, W, C] = x.shape;
    if (H !== c.imgSize || W !== c.imgSize || C !== c.inChans) {
      throw new Error(
        `input is ${H}×${W}×${C}, the model expects ${c.imgSize}×${c.imgSize}×${c.inChans} (NHWC)`,
      );
    }
    // [B, g, p, g, p, C] → [B, g, g, p, p, C]: each row is one patch flattened as (ph, pw, c).
    const patches = tf.reshape(tf.transpose(tf.reshape(x, [B, g, p, g, p, C]), [0, 1, 3, 2, 4, 5]), [
      B * g * g,
      p * p * C,
    ]);
    return this.#patchProj.forward(patches as tf.Tensor2D);
  }

  /** Tokens after the final norm (and, on request, per-block tokens and attention maps). */
  forwardFeatures(x: tf.Tensor4D, opts: FeatureOptions = {}): Features {
    const c = this.config, p = this.#p;
    const ctx: ForwardContext = { training: opts.training ?? false, rng: opts.rng ?? this.rng };
    const B = x.shape[0], D = c.embedDim;
    const patchTokens = tf.reshape(this.patchEmbed(x), [B, tokenCounts(c).patches, D]);
    const prefix = [tf.tile(p("cls_token"), [B, 1, 1])];
    if (c.distilled) prefix.push(tf.tile(p("dist_token"), [B, 1, 1]));
    let h = tf.add(tf.concat([...prefix, patchTokens], 1), p("pos_embed")) as tf.Tensor3D; // [B, T, D]
    h = dropout(h, c.dropRate, ctx);

    const blocks: tf.Tensor3D[] | undefined = opts.blockTokens ? [] : undefined;
    const attention: tf.Tensor4D[] | undefined = opts.attention ? [] : undefined;
    for (const block of this.blocks) {
      h = block.forward(h, ctx, attention);
      if (blocks) blocks.push(tf.keep(h));
    }
    return { tokens: this.#norm.forward(h), blocks, attention };
  }

  /** Heads on the normalised tokens `[B, T, D]`: head(token 0), head_dist(token 1). */
  forwardHead(tokens: tf.Tensor3D): Logits {
    const c = this.config;
    if (c.numClasses === 0) throw new Error("this model has no head (numClasses 0); use forwardFeatures");
    const [B, , D] = tokens.shape;
    const token = (i: number) => tf.reshape(tf.slice(tokens, [0, i, 0], [B, 1, D]), [B, D]) as tf.Tensor2D;
    const cls = this.#head.forward(token(0));
    return c.distilled ? { cls, dist: this.#headDist.forward(token(1)) } : { cls };
  }

  /** Logits `{cls, dist?}` for `[B, H, W, C]` input, in training and in eval mode alike. */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): Logits {
    return tf.tidy(() => this.forwardHead(this.forwardFeatures(x, opts).tokens));
  }

  /** Eval-mode prediction logits (DeiT's inference rule for distilled models). */
  predict(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => inferenceLogits(this.forward(x, { training: false })));
  }

  // --- checkpoint interface (see lib/io/checkpoint.ts) ---

  torchShapes(): Map<string, number[]> {
    return vitParamShapes(this.config);
  }

  toInternal(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
    return toInternal(name, torchShape, data);
  }

  toTorch(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
    return toTorch(name, torchShape, data);
  }

  readonly headNames = ["head.weight", "head.bias", "head_dist.weight", "head_dist.bias"];

  /** A checkpoint's position grid that differs from ours is resampled by DeiT's rule (bicubic). */
  adapt(name: string, t: HostTensor): { tensor: HostTensor; note: string } | null {
    if (name !== "pos_embed" || t.shape.length !== 3 || t.shape[0] !== 1) return null;
    const { prefix, grid } = tokenCounts(this.config);
    const D = this.config.embedDim;
    const oldGrid = Math.round(Math.sqrt(t.shape[1] - prefix));
    if (t.shape[2] !== D || oldGrid * oldGrid !== t.shape[1] - prefix || oldGrid < 1) return null;
    const data = resamplePosEmbed(t.data as Float32Array, prefix, oldGrid, grid, D);
    return {
      tensor: { dtype: "F32", shape: [1, prefix + grid * grid, D], data },
      note: `pos_embed resampled from a ${oldGrid}×${oldGrid} to a ${grid}×${grid} grid (bicubic)`,
    };
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/**
 * timm's ViT initialisation (timm 0.3.2, which DeiT uses): Linear weights N(0, 0.02) truncated at ±2
 * (absolute, so it never binds at this std), biases 0; LayerNorm 1 / 0; class/distillation tokens and the
 * position embedding N(0, 0.02); the patch-embedding convolution keeps PyTorch's default
 * (kaiming-uniform with a = √5, i.e. U(±1/√fan_in) for weight and bias).
 */
function initParams(c: ViTConfig, rng: Rng): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  const fanIn = c.inChans * c.patchSize * c.patchSize;
  for (const [name, torchShape] of vitParamShapes(c)) {
    const shape = internalShape(name, torchShape);
    const t = tf.tidy(() => {
      if (name.startsWith("patch_embed.")) {
        const bound = 1 / Math.sqrt(fanIn);
        return tf.randomUniform(shape, -bound, bound, "float32", rng.nextSeed());
      }
      if (/norm\d?\.weight$/.test(name)) return tf.ones(shape);
      if (name.endsWith(".bias")) return tf.zeros(shape);
      return tf.clipByValue(tf.randomNormal(shape, 0, 0.02, "float32", rng.nextSeed()), -2, 2);
    });
    out.set(name, tf.variable(t, true)); // tf variable names are global: keep ours in the map
    t.dispose();
  }
  return out;
}
