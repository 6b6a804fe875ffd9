/**
 * Analyses of a distilled DeiT used by the notebooks: how similar the class and distillation tokens are
 * through the network (paper: cosine 0.06 at the input, 0.93 after the last layer for a trained DeiT-B⚗),
 * how often student and teacher agree, and where the two tokens look (attention rollout).
 */
import * as tf from "@tensorflow/tfjs";
import type { VisionTransformer } from "../vit/model.ts";
import type { Teacher } from "./losses.ts";

/** Mean over `[B, D]` rows of cos(a_i, b_i), as a scalar tensor. */
function meanCosine(a: tf.Tensor2D, b: tf.Tensor2D): tf.Scalar {
  const dot = tf.sum(tf.mul(a, b), 1);
  const na = tf.norm(a, 2, 1), nb = tf.norm(b, 2, 1);
  return tf.mean(tf.div(dot, tf.mul(na, nb)));
}

/** Scalars' values, read back in one asynchronous transfer (every backend, WebGPU included). */
async function readScalars(ts: tf.Scalar[]): Promise<number[]> {
  const all = tf.stack(ts);
  const v = Array.from(await all.data());
  tf.dispose([all, ...ts]);
  return v;
}

export interface TokenSimilarity {
  /** cos(cls, dist) of the embeddings entering block 0 (token + position embedding; the same for all images). */
  input: number;
  /** Mean over images of cos(cls, dist) after each block (before the final norm). */
  blocks: number[];
  /** After the final LayerNorm (the heads' inputs). */
  output: number;
}

/** Cosine similarity of the class and distillation tokens, layer by layer, on images `x`. */
export async function tokenSimilarity(model: VisionTransformer, x: tf.Tensor4D): Promise<TokenSimilarity> {
  if (!model.config.distilled) throw new Error("token similarity needs a model with a distillation token");
  const cosines = tf.tidy(() => {
    const D = model.config.embedDim;
    const p = (n: string) => model.params.get(n)!;
    const pos = p("pos_embed");
    const cls0 = tf.add(
      tf.reshape(p("cls_token"), [1, D]),
      tf.slice(pos, [0, 0, 0], [1, 1, D]).reshape([1, D]),
    );
    const dist0 = tf.add(
      tf.reshape(p("dist_token"), [1, D]),
      tf.slice(pos, [0, 1, 0], [1, 1, D]).reshape([1, D]),
    );
    const f = model.forwardFeatures(x, { blockTokens: true });
    const B = x.shape[0];
    const tok = (h: tf.Tensor3D, i: number) =>
      tf.reshape(tf.slice(h, [0, i, 0], [B, 1, D]), [B, D]) as tf.Tensor2D;
    const out = [
      meanCosine(cls0 as tf.Tensor2D, dist0 as tf.Tensor2D),
      ...f.blocks!.map((h) => meanCosine(tok(h, 0), tok(h, 1))),
      meanCosine(tok(f.tokens, 0), tok(f.tokens, 1)),
    ];
    tf.dispose(f.blocks!); // kept out of tidy scopes by forwardFeatures
    return out;
  });
  const v = await readScalars(cosines);
  return { input: v[0], blocks: v.slice(1, -1), output: v[v.length - 1] };
}

export interface Agreement {
  /** Share (0–1) of images where the student's class head has the teacher's top-1. */
  cls: number;
  dist: number | null;
  /** The (cls + dist)/2 prediction. */
  both: number | null;
  /** Images compared. */
  count: number;
}

/** Student–teacher top-1 agreement per head on images `x` (the paper's disagreement analysis). */
export async function agreement(
  student: VisionTransformer,
  teacher: Teacher,
  x: tf.Tensor4D,
): Promise<Agreement> {
  const shares = tf.tidy(() => {
    const t = tf.argMax(teacher.predict(x), 1);
    const out = student.forward(x);
    const share = (z: tf.Tensor2D) => tf.mean(tf.cast(tf.equal(tf.argMax(z, 1), t), "float32")) as tf.Scalar;
    return out.dist
      ? [share(out.cls), share(out.dist), share(tf.div(tf.add(out.cls, out.dist), 2) as tf.Tensor2D)]
      : [share(out.cls)];
  });
  const [cls, dist, both] = await readScalars(shares);
  return { cls, dist: dist ?? null, both: both ?? null, count: x.shape[0] };
}

export interface AttentionMaps {
  /** Grid side; maps are row-major `[grid·grid]`. */
  grid: number;
  /** Rollout attention of the class token to each patch, per image, `[B][grid·grid]` (each sums to ≤ 1). */
  cls: Float32Array[];
  /** Same for the distillation token (distilled models). */
  dist: Float32Array[] | null;
}

/**
 * Attention rollout (Abnar & Zuidema 2020): per block, heads averaged, the residual added as ½(A + I) and rows
 * renormalised; the blocks' matrices multiplied from the input up. The prefix tokens' rows, restricted to the
 * patch columns, show where each token draws its information from.
 */
export async function attentionRollout(model: VisionTransformer, x: tf.Tensor4D): Promise<AttentionMaps> {
  const f = model.forwardFeatures(x, { attention: true });
  let roll: tf.Tensor3D | undefined;
  try {
    roll = tf.tidy(() => {
      const [B, , T] = f.attention![0].shape;
      const eye = tf.eye(T).expandDims(0);
      let r = tf.tile(eye, [B, 1, 1]) as tf.Tensor3D;
      for (const a of f.attention!) {
        const m = tf.add(tf.mean(a, 1), eye); // [B, T, T]
        const norm = tf.div(m, tf.sum(m, -1, true)) as tf.Tensor3D;
        r = tf.matMul(norm, r);
      }
      return r;
    });
    const [B, T] = roll.shape;
    const prefix = model.config.distilled ? 2 : 1;
    const grid = model.config.imgSize / model.config.patchSize;
    const data = (await roll.data()) as Float32Array;
    const row = (b: number, i: number) => data.slice((b * T + i) * T + prefix, (b * T + i + 1) * T);
    return {
      grid,
      cls: Array.from({ length: B }, (_, b) => row(b, 0)),
      dist: model.config.distilled ? Array.from({ length: B }, (_, b) => row(b, 1)) : null,
    };
  } finally {
    tf.dispose([f.tokens, ...f.attention!, ...(roll ? [roll] : [])]);
  }
}
