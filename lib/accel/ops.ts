/**
 * The fast ops: what the model's layers (lib/vit/layers.ts) hand their work to while the op switch
 * (lib/accel/switch.ts) is on. Same functions as the layers' readable formulations (only float rounding
 * differs; tests/fast_paths_test.ts and the parity tests check every path), with hand-written gradients
 * shaped for what the active backend does fast.
 *
 * Measured on wasm (bench/NOTES.md): through the stock XNNPACK kernel a plain 2-D matmul runs at 13–30
 * GFLOPS, but a matmul with `transposeA`/`transposeB` — what tf's own MatMul gradient uses — or with a batch
 * dimension falls to a generic loop at 1–2.5 GFLOPS. So on that kernel every gradient here is a plain matmul
 * on an explicitly transposed operand, and attention is a loop of 2-D matmuls. With the matmuls through BLAS
 * (lib/accel/blas.ts: transposes and batches at full speed) the gradients pass transpose flags instead, and
 * attention is three kernels that run sgemm on q, k and v where they lie in the qkv projection's output (no
 * head-layout transposes). On wasm, LayerNorm and GELU are fused kernels (lib/accel/wasm_kernels.ts).
 *
 * Every call is counted ({@link fastOpCalls}), so a test can tell which path ran.
 */
import * as tf from "@tensorflow/tfjs";
import { blasMatMulActive } from "./blas.ts";
import type { AttentionShape } from "./kernel.ts";
import { fusedGeluActive, fusedKernelsActive } from "./wasm_kernels.ts";

export type { AttentionShape } from "./kernel.ts";

/** The fast ops by name. */
export type FastOp = "dense" | "gelu" | "layerNorm" | "attention";

const calls: Record<FastOp, number> = { dense: 0, gelu: 0, layerNorm: 0, attention: 0 };

/** How many times each fast op has been called in this thread so far (tests take differences). */
export function fastOpCalls(): Record<FastOp, number> {
  return { ...calls };
}

/** y = x·W + b for x `[M, K]`, W `[K, N]`, b `[N]` → `[M, N]`. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  calls.dense++;
  if (b) {
    const f = tf.customGrad((x, w, b, save) => {
      (save as tf.GradSaveFunc)([x as tf.Tensor2D, w as tf.Tensor2D]);
      return {
        value: tf.tidy(() => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b as tf.Tensor1D)),
        gradFunc: (dy, saved) => {
          const [xs, ws] = saved as tf.Tensor2D[];
          return [
            denseGradX(dy as tf.Tensor2D, ws),
            denseGradW(xs, dy as tf.Tensor2D),
            sumRows(dy as tf.Tensor2D),
          ];
        },
      };
    });
    return f(x, w, b) as tf.Tensor2D;
  }
  const f = tf.customGrad((x, w, save) => {
    (save as tf.GradSaveFunc)([x as tf.Tensor2D, w as tf.Tensor2D]);
    return {
      value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
      gradFunc: (dy, saved) => {
        const [xs, ws] = saved as tf.Tensor2D[];
        return [denseGradX(dy as tf.Tensor2D, ws), denseGradW(xs, dy as tf.Tensor2D)];
      },
    };
  });
  return f(x, w) as tf.Tensor2D;
}

/**
 * Column sums of `[M, N]` → `[N]` (bias gradients). wasm's Sum reduces the last axis only, so over axis 0 it
 * transposes first (21% of a small DeiT's step, `deno task bench:profile`); with BLAS it is one product 1ᵀ·x.
 */
export function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  if (!blasMatMulActive()) return tf.sum(x, 0);
  return tf.tidy(() => tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]));
}

/** dL/dx = dy·Wᵀ, `[M, N]`·`[N, K]`. */
function denseGradX(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  if (blasMatMulActive()) return tf.matMul(dy, w, false, true);
  return tf.tidy(() => tf.matMul(dy, tf.transpose(w)));
}

/** dL/dW = xᵀ·dy, `[K, M]`·`[M, N]`. */
function denseGradW(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  if (blasMatMulActive()) return tf.matMul(x, dy, true, false);
  return tf.tidy(() => tf.matMul(tf.transpose(x), dy));
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * The exact GELU x·Φ(x) = x/2·(1 + erf(x/√2)), with its derivative Φ(x) + x·φ(x) written out so that the
 * backward pass keeps only x (autodiff would keep every intermediate of the forward formula).
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  calls.gelu++;
  if (fusedGeluActive()) {
    // One wasm-SIMD pass each way (lib/accel/simd); Φ(x) is kept for the backward pass (one activation more).
    const fused = tf.customGrad((x, save) => {
      const [y, cdf] = tf.engine().runKernel("DeitGelu", { x: x as tf.Tensor }) as tf.Tensor[];
      (save as tf.GradSaveFunc)([x as tf.Tensor, cdf]);
      return {
        value: y,
        gradFunc: (dy, saved) => [
          tf.engine().runKernel("DeitGeluGrad", {
            x: saved[0],
            cdf: saved[1],
            dy: dy as tf.Tensor,
          }) as tf.Tensor,
        ],
      };
    });
    return fused(x) as tf.Tensor;
  }
  const f = tf.customGrad((x, save) => {
    (save as tf.GradSaveFunc)([x as tf.Tensor]);
    return {
      // Inside tidy: the forward's temporaries are freed at once instead of living until the step ends.
      value: tf.tidy(() =>
        tf.mul(tf.mul(x as tf.Tensor, 0.5), tf.add(tf.erf(tf.mul(x as tf.Tensor, Math.SQRT1_2)), 1))
      ),
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xs] = saved;
          const cdf = tf.mul(tf.add(tf.erf(tf.mul(xs, Math.SQRT1_2)), 1), 0.5);
          const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
          return [tf.mul(dy as tf.Tensor, tf.add(cdf, tf.mul(xs, pdf)))];
        }),
    };
  });
  return f(x) as tf.Tensor;
}

/**
 * Multi-head attention core on the output of one qkv projection.
 *
 * `qkv` `[B·T, 3D]` with columns [q | k | v], each split into heads of `headDim` → `[B·T, D]`, the heads'
 * outputs side by side (so the output projection follows directly). Per (sample, head): S = q·kᵀ/√d,
 * P = softmax(S), O = P·v — each a plain 2-D matmul on slices of one pre-transposed K. When `keep` is given,
 * the attention probabilities `[B, H, T, T]` are pushed to it (kept out of the surrounding tidy).
 */
export function attentionCore(qkv: tf.Tensor2D, s: AttentionShape, keep?: tf.Tensor4D[]): tf.Tensor2D {
  calls.attention++;
  if (blasMatMulActive()) return attentionInPlace(qkv, s, keep);
  const { batch: B, tokens: T, heads: H, headDim: hd } = s;
  const D = H * hd;
  const scale = 1 / Math.sqrt(hd);
  // q is scaled before the product (T·d multiplications instead of T·T; same value up to rounding).
  const scaledQ = (qkv: tf.Tensor2D) => tf.mul(tf.slice(qkv, [0, 0], [B * T, D]), scale) as tf.Tensor2D;
  const f = tf.customGrad((qkv, save) => {
    const qkv2 = qkv as tf.Tensor2D;
    // Inside tidy: the per-head slices and scores are freed at once; only the output and P are kept.
    const { value, probs } = tf.tidy(() => {
      const qs = scaledQ(qkv2);
      const kT = tf.transpose(tf.slice(qkv2, [0, D], [B * T, D])); // [D, B·T]
      const probs: tf.Tensor2D[] = [];
      const rows: tf.Tensor2D[] = [];
      for (let b = 0; b < B; b++) {
        const heads: tf.Tensor2D[] = [];
        for (let h = 0; h < H; h++) {
          const q = tf.slice(qs, [b * T, h * hd], [T, hd]);
          const kt = tf.slice(kT, [h * hd, b * T], [hd, T]);
          const v = tf.slice(qkv2, [b * T, 2 * D + h * hd], [T, hd]);
          const p = tf.softmax(tf.matMul(q, kt)) as tf.Tensor2D; // [T, T]
          probs.push(p);
          heads.push(tf.matMul(p, v));
        }
        rows.push(H === 1 ? heads[0] : tf.concat(heads, 1));
      }
      return { value: B === 1 ? rows[0] : tf.concat(rows, 0), probs };
    });
    (save as tf.GradSaveFunc)([qkv2, ...probs]);
    if (keep) keep.push(tf.keep(tf.tidy(() => tf.reshape(tf.stack(probs), [B, H, T, T]) as tf.Tensor4D)));
    return {
      value,
      // tf runs the whole backward pass in one tidy: without a tidy here every temporary of every block
      // would live until the step ends (GBs at batch 32).
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [qkvS, ...ps] = saved as tf.Tensor2D[];
          const dO = dy as tf.Tensor2D;
          const qs = scaledQ(qkvS);
          const vT = tf.transpose(tf.slice(qkvS, [0, 2 * D], [B * T, D])); // [D, B·T]
          const gradRows: tf.Tensor2D[] = [];
          for (let b = 0; b < B; b++) {
            const dq: tf.Tensor2D[] = [], dk: tf.Tensor2D[] = [], dv: tf.Tensor2D[] = [];
            for (let h = 0; h < H; h++) {
              const p = ps[b * H + h];
              const dOh = tf.slice(dO, [b * T, h * hd], [T, hd]);
              dv.push(tf.matMul(tf.transpose(p), dOh));
              const dP = tf.matMul(dOh, tf.slice(vT, [h * hd, b * T], [hd, T]));
              // softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P))
              const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), 1, true))) as tf.Tensor2D;
              const k = tf.slice(qkvS, [b * T, D + h * hd], [T, hd]);
              dq.push(tf.mul(tf.matMul(dS, k), scale) as tf.Tensor2D);
              dk.push(tf.matMul(tf.transpose(dS), tf.slice(qs, [b * T, h * hd], [T, hd])));
            }
            gradRows.push(tf.concat([...dq, ...dk, ...dv], 1));
          }
          return [B === 1 ? gradRows[0] : tf.concat(gradRows, 0)];
        }),
    };
  });
  return f(qkv) as tf.Tensor2D;
}

/**
 * `attentionCore` with the BLAS kernels that read q, k and v where they lie in qkv (lib/accel/blas.ts): scores,
 * the stock softmax, context; backward one kernel. Saved for the gradient: qkv and P.
 */
function attentionInPlace(qkv: tf.Tensor2D, s: AttentionShape, keep?: tf.Tensor4D[]): tf.Tensor2D {
  const { batch: B, tokens: T, heads: H } = s;
  const attrs = { ...s } as unknown as tf.NamedAttrMap;
  const run = (name: string, inputs: tf.NamedTensorMap) =>
    tf.engine().runKernel(name, inputs, attrs) as tf.Tensor;
  const f = tf.customGrad((qkv, save) => {
    const x = qkv as tf.Tensor2D;
    const p = tf.tidy(() => tf.softmax(run("DeitAttnScores", { qkv: x }))) as tf.Tensor3D; // [B·H, T, T]
    (save as tf.GradSaveFunc)([x, p]);
    if (keep) keep.push(tf.keep(tf.reshape(p, [B, H, T, T]) as tf.Tensor4D));
    return {
      value: run("DeitAttnContext", { p, qkv: x }) as tf.Tensor2D,
      gradFunc: (dy, saved) => [run("DeitAttnGrad", { dy: dy as tf.Tensor, qkv: saved[0], p: saved[1] })],
    };
  });
  return f(qkv) as tf.Tensor2D;
}

/**
 * LayerNorm over the last axis (biased variance, as torch.nn.LayerNorm) for x `[..., D]`, weight/bias `[D]`.
 * The backward pass keeps only x̂ and 1/σ: dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·w.
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  calls.layerNorm++;
  const D = x.shape[x.shape.length - 1];
  if (fusedKernelsActive()) {
    const fused = tf.customGrad((x, w, b, save) => {
      const [y, xhat, rstd] = tf.engine().runKernel(
        "DeitLayerNorm",
        { x: x as tf.Tensor, weight: w as tf.Tensor, bias: b as tf.Tensor },
        { eps },
      ) as tf.Tensor[];
      (save as tf.GradSaveFunc)([xhat, rstd, w as tf.Tensor]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xh, rs, ws] = saved;
          return tf.engine().runKernel(
            "DeitLayerNormGrad",
            { dy: dy as tf.Tensor, xhat: xh, rstd: rs, weight: ws },
          ) as tf.Tensor[];
        },
      };
    });
    return fused(x, weight, bias) as tf.Tensor;
  }
  const f = tf.customGrad((x, w, b, save) => {
    const { xhat, rstd, y } = tf.tidy(() => {
      const x2 = tf.reshape(x as tf.Tensor, [-1, D]);
      const { mean, variance } = tf.moments(x2, -1, true);
      const rstd = tf.rsqrt(tf.add(variance, eps)); // [N, 1]
      const xhat = tf.mul(tf.sub(x2, mean), rstd); // [N, D]
      const y = tf.reshape(tf.add(tf.mul(xhat, w as tf.Tensor), b as tf.Tensor), (x as tf.Tensor).shape);
      return { xhat, rstd, y };
    });
    (save as tf.GradSaveFunc)([xhat, rstd, w as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xh, rs, ws] = saved;
          const g = tf.reshape(dy as tf.Tensor, [-1, D]);
          const gh = tf.mul(g, ws);
          const dx = tf.mul(
            rs,
            tf.sub(tf.sub(gh, tf.mean(gh, -1, true)), tf.mul(xh, tf.mean(tf.mul(gh, xh), -1, true))),
          );
          return [
            tf.reshape(dx, (dy as tf.Tensor).shape),
            sumRows(tf.mul(g, xh) as tf.Tensor2D),
            sumRows(g as tf.Tensor2D),
          ];
        }),
    };
  });
  return f(x, weight, bias) as tf.Tensor;
}
