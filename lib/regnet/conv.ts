/**
 * Convolution and BatchNorm ops for the convnet teachers (RegNetY), with hand-written gradients that run on
 * every backend, wasm included.
 *
 * Two gaps in TensorFlow.js 4.22 are closed here:
 *
 * - **Grouped convolution.** tf has none. `conv2d` splits the channels into groups once (one transpose to a
 *   group-major layout `[G, B, H, W, C/G]`, so every group is a contiguous slice) and runs one stock
 *   `tf.conv2d` per group — on wasm that is XNNPACK's convolution, which never materialises an im2col matrix.
 *   The group outputs are stacked and transposed back to NHWC. RegNetY has at most a few dozen groups per layer
 *   (group widths 8–112), so the per-group calls stay cheap. Where there are few, narrow groups the transposes
 *   cost more than the arithmetic, and one dense convolution with a block-diagonal filter (G× the work) is
 *   faster; `auto` picks by the wasted work (see BLOCK_DIAGONAL_MAX_WASTE). An im2col matrix with a batched
 *   matmul over the groups was slower than both (2–10×, wasm).
 * - **Training on wasm.** The wasm backend has no `Conv2DBackpropFilter` kernel (so `tf.grad` of any
 *   `tf.conv2d` fails there), and its `Conv2DBackpropInput` is a plain C loop. Both gradients are written as
 *   forward convolutions, which every backend has and XNNPACK runs fast:
 *     dx = conv(zero-dilated, padded dy, the filter rotated 180° with in/out swapped)   (stride 1)
 *     dW = conv(padded x with batch and channels swapped, dy as the filter, dilation = stride)
 *   i.e. the weight gradient Σₙₕᵥ x[n, s·h+i, s·w+j, c]·dy[n, h, w, o] is itself a correlation, with the batch
 *   as the contracted channel axis. For 1×1 convolutions dW is a plain 2-D matmul xᵀ·dy.
 * - **Reductions over N, H, W** (BatchNorm statistics, global pooling) are average pools over the whole map,
 *   NHWC-native on wasm; tf.mean / tf.sum over those axes transpose the tensor first, and wasm's AvgPoolGrad is
 *   slow, so the pooling gradient is written out (a broadcast).
 *
 * Layouts: activations NHWC; filters `[kh, kw, Cin/G, Cout]` (TensorFlow's HWIO; output channel o belongs to
 * group ⌊o / (Cout/G)⌋, as in PyTorch). Padding is PyTorch's symmetric zero padding.
 */
import * as tf from "@tensorflow/tfjs";

export interface ConvOptions {
  /** Stride on both spatial axes (default 1). */
  stride?: number;
  /** Zero padding on every side, PyTorch-style (default 0). */
  pad?: number;
  /** Groups (default 1): Cin and Cout must both be multiples. */
  groups?: number;
  /**
   * How groups are computed: `split` (one convolution per group on a group-major copy), `blockDiagonal` (one
   * dense convolution whose filter is zero outside the diagonal blocks: G× the multiply-adds, no transposes),
   * or `auto` (default): block-diagonal while it wastes at most `BLOCK_DIAGONAL_MAX_WASTE` multiply-adds per
   * output value. Same values either way.
   */
  groupedImpl?: "auto" | "split" | "blockDiagonal";
}

/**
 * Wasted multiply-adds per output value (k²·Cin/G·(G − 1)) up to which one block-diagonal convolution beats
 * splitting into groups. Measured on wasm (batch 32; bench notes in the RegNet report): splitting costs two
 * transposes and a stack of the activations, which at 56×56 outweigh up to ~2.5× extra arithmetic — G = 3 and
 * 6 with 8-channel groups are 1.7–3.7× faster block-diagonal; G = 7 at 28×28, G = 13, and G = 2 or 4 with
 * 112-channel groups are as fast or faster split.
 */
export const BLOCK_DIAGONAL_MAX_WASTE = 400;

function useBlockDiagonal(w: tf.Tensor4D, G: number, impl: ConvOptions["groupedImpl"]): boolean {
  if (G === 1 || impl === "split") return false;
  if (impl === "blockDiagonal") return true;
  const [k, , ci] = w.shape;
  return k * k * ci * (G - 1) <= BLOCK_DIAGONAL_MAX_WASTE;
}

/**
 * Grouped filter `[k, k, ci, G·co]` → the equivalent dense filter `[k, k, G·ci, G·co]`, zero outside the
 * diagonal blocks: W ⊗ I_G by one broadcast multiply (differentiable; its gradient keeps the diagonal blocks).
 */
export function blockDiagonal(w: tf.Tensor4D, G: number): tf.Tensor4D {
  const [k, , ci, C] = w.shape, co = C / G;
  const eye = tf.reshape(tf.eye(G), [1, G, 1, G, 1]);
  return tf.reshape(tf.mul(tf.reshape(w, [k * k, 1, ci, G, co]), eye), [k, k, G * ci, C]);
}

/** PyTorch's output size: ⌊(n + 2p − k) / s⌋ + 1. */
export function convOutSize(n: number, k: number, stride: number, pad: number): number {
  return Math.floor((n + 2 * pad - k) / stride) + 1;
}

type Pad4 = [[number, number], [number, number], [number, number], [number, number]];
const explicit = (p: number): Pad4 => [[0, 0], [p, p], [p, p], [0, 0]];

// Transposes are written on as few axes as possible (adjacent axes that stay together are merged): wasm's
// transpose has fast paths for rank ≤ 4 only.

/** `[B, H, W, G·c]` → `[G, B, H, W, c]`. */
function toGroups(x: tf.Tensor4D, G: number): tf.Tensor5D {
  const [B, H, W, C] = x.shape, c = C / G;
  if (G === 1) return tf.reshape(x, [1, B, H, W, C]);
  return tf.reshape(tf.transpose(tf.reshape(x, [B * H * W, G, c]), [1, 0, 2]), [G, B, H, W, c]);
}

/** `[G, B, H, W, c]` → `[B, H, W, G·c]`. */
function fromGroups(y: tf.Tensor5D): tf.Tensor4D {
  const [G, B, H, W, c] = y.shape;
  if (G === 1) return tf.reshape(y, [B, H, W, c]);
  return tf.reshape(tf.transpose(tf.reshape(y, [G, B * H * W, c]), [1, 0, 2]), [B, H, W, G * c]);
}

/** Filter `[k, k, ci, G·co]` → per-group filters `[G, k, k, ci, co]`. */
function groupFilters(w: tf.Tensor4D, G: number): tf.Tensor5D {
  const [kh, kw, ci, C] = w.shape, co = C / G;
  if (G === 1) return tf.reshape(w, [1, kh, kw, ci, C]);
  return tf.reshape(tf.transpose(tf.reshape(w, [kh * kw * ci, G, co]), [1, 0, 2]), [G, kh, kw, ci, co]);
}

/** Row `g` of a stacked tensor, without its leading axis (a contiguous slice). */
function part<T extends tf.Tensor>(t: tf.Tensor, g: number): T {
  const [n, ...rest] = t.shape;
  if (n === 1) return tf.reshape(t, rest) as T;
  return tf.reshape(tf.slice(t, [g], [1]), rest) as T;
}

/** Every group's output, stacked on a new leading axis. */
function perGroup(G: number, f: (g: number) => tf.Tensor): tf.Tensor {
  const outs = Array.from({ length: G }, (_, g) => f(g));
  return G === 1 ? tf.expandDims(outs[0], 0) : tf.stack(outs);
}

function checkShapes(x: tf.Tensor4D, w: tf.Tensor4D, G: number, pad: number) {
  const C = x.shape[3], [kh, kw, ci, co] = w.shape;
  if (kh !== kw) throw new Error(`conv2d: square kernels only, got ${kh}×${kw}`);
  if (C % G !== 0 || co % G !== 0) {
    throw new Error(`conv2d: ${C} → ${co} channels do not split into ${G} groups`);
  }
  if (ci * G !== C) throw new Error(`conv2d: filter takes ${ci}·${G} input channels, the input has ${C}`);
  if (pad > kh - 1) throw new Error(`conv2d: padding ${pad} exceeds kernel − 1 (${kh - 1})`);
}

/**
 * PyTorch's `nn.Conv2d` (no bias; `bias` `[Cout]` is added when given) on NHWC input with an HWIO (grouped)
 * filter. Gradients for x and W run on every backend (see the file comment).
 */
export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, o: ConvOptions = {}, bias?: tf.Tensor1D): tf.Tensor4D {
  const s = o.stride ?? 1, p = o.pad ?? 0, G = o.groups ?? 1;
  checkShapes(x, w, G, p);
  const k = w.shape[0];
  if (useBlockDiagonal(w, G, o.groupedImpl)) {
    return conv2d(x, blockDiagonal(w, G), { stride: s, pad: p }, bias);
  }
  if (k === 1 && p === 0 && G === 1) return pointwise(x, w, s, bias);
  const y = groupedConv(x, w, s, p, G);
  return bias ? tf.add(y, bias) : y;
}

/**
 * 1×1 convolution (stride: keep every s-th row and column first). Value and dx are stock 1×1 convolutions
 * (XNNPACK on wasm, ~2× a matmul of the same shape there); dW = xᵀ·dy is a plain 2-D matmul on an explicitly
 * transposed x.
 */
function pointwise(x: tf.Tensor4D, w: tf.Tensor4D, s: number, bias?: tf.Tensor1D): tf.Tensor4D {
  const xs = s === 1 ? x : subsample(x, s);
  const f = tf.customGrad((x, w, save) => {
    (save as tf.GradSaveFunc)([x as tf.Tensor4D, w as tf.Tensor4D]);
    return {
      value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "valid"),
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xs, ws] = saved as tf.Tensor4D[];
          const [B, H, W, C] = xs.shape, Co = ws.shape[3], M = B * H * W;
          const g = dy as tf.Tensor4D;
          const wt = tf.reshape(tf.transpose(tf.reshape(ws, [C, Co])), [1, 1, Co, C]) as tf.Tensor4D;
          const dw = tf.matMul(tf.transpose(tf.reshape(xs, [M, C])), tf.reshape(g, [M, Co]));
          return [tf.conv2d(g, wt, 1, "valid"), tf.reshape(dw, [1, 1, C, Co])];
        }),
    };
  });
  const y = f(xs, w) as tf.Tensor4D;
  return bias ? tf.add(y, bias) : y;
}

/**
 * x[:, ::s, ::s, :] (what a 1×1 stride-s convolution with no padding sees), by a reshape that puts the phase
 * on its own axis and a slice — ops whose gradients every backend has.
 */
export function subsample(x: tf.Tensor4D, s: number): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const Ho = Math.ceil(H / s), Wo = Math.ceil(W / s);
  const padded = Ho * s === H && Wo * s === W
    ? x
    : tf.pad(x, [[0, 0], [0, Ho * s - H], [0, Wo * s - W], [0, 0]]);
  const phases = tf.reshape(padded, [B, Ho, s, Wo, s, C]);
  return tf.reshape(tf.slice(phases, [0, 0, 0, 0, 0, 0], [B, Ho, 1, Wo, 1, C]), [B, Ho, Wo, C]);
}

/** The k×k (grouped) convolution with its hand-written gradient. */
function groupedConv(x: tf.Tensor4D, w: tf.Tensor4D, s: number, p: number, G: number): tf.Tensor4D {
  const f = tf.customGrad((x, w, save) => {
    const x4 = x as tf.Tensor4D, w4 = w as tf.Tensor4D;
    (save as tf.GradSaveFunc)([x4, w4]);
    return {
      value: tf.tidy(() => convForward(x4, w4, s, p, G)),
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xs, ws] = saved as tf.Tensor4D[];
          return [
            convGradInput(dy as tf.Tensor4D, ws, xs.shape, s, p, G),
            convGradFilter(xs, dy as tf.Tensor4D, ws.shape[0], s, p, G),
          ];
        }),
    };
  });
  return f(x, w) as tf.Tensor4D;
}

/** One stock convolution per group on the group-major layout. */
function convForward(x: tf.Tensor4D, w: tf.Tensor4D, s: number, p: number, G: number): tf.Tensor4D {
  if (G === 1) return tf.conv2d(x, w, s, explicit(p));
  const xg = toGroups(x, G), wg = groupFilters(w, G);
  return fromGroups(
    perGroup(
      G,
      (g) => tf.conv2d(part<tf.Tensor4D>(xg, g), part<tf.Tensor4D>(wg, g), s, explicit(p)),
    ) as tf.Tensor5D,
  );
}

/**
 * dL/dx: dx[h] = Σₖ dyᵈ[h + p − k]·W[k], with dyᵈ the output gradient spread back to stride 1 (zeros between).
 * That is a stride-1 valid correlation of dyᵈ, padded by k−1−p, with the filter rotated 180° and its in/out
 * channels swapped.
 */
function convGradInput(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  xShape: number[],
  s: number,
  p: number,
  G: number,
): tf.Tensor4D {
  const [B, H, W] = xShape, [Bo, Ho, Wo, Co] = dy.shape, k = w.shape[0];
  const co = Co / G;
  // All groups at once: [G·B, Ho, Wo, co], then dilate and pad.
  let d = G === 1 ? dy : tf.reshape(toGroups(dy, G), [G * Bo, Ho, Wo, co]) as tf.Tensor4D;
  if (s > 1) {
    const spread = tf.pad(tf.reshape(d, [G * B, Ho, 1, Wo, 1, co]), [
      [0, 0],
      [0, 0],
      [0, s - 1],
      [0, 0],
      [0, s - 1],
      [0, 0],
    ]);
    d = tf.reshape(spread, [G * B, Ho * s, Wo * s, co]);
  }
  const top = k - 1 - p, needH = H + k - 1, needW = W + k - 1;
  const bottom = needH - top - Ho * s, right = needW - top - Wo * s;
  d = tf.pad(d, [[0, 0], [top, Math.max(0, bottom)], [top, Math.max(0, right)], [0, 0]]);
  if (bottom < 0 || right < 0) d = tf.slice(d, [0, 0, 0, 0], [G * B, needH, needW, co]);
  // Rotated, transposed filters: [G, k, k, co, ci].
  const ci = w.shape[2];
  const flipped = tf.reverse(tf.reshape(groupFilters(w, G), [G, k, k, ci * co]), [1, 2]);
  const wt = tf.reshape(tf.transpose(tf.reshape(flipped, [G * k * k, ci, co]), [0, 2, 1]), [G, k, k, co, ci]);
  if (G === 1) return tf.conv2d(d, part<tf.Tensor4D>(wt, 0), 1, "valid");
  const dg = tf.reshape(d, [G, B, needH, needW, co]);
  return fromGroups(
    perGroup(
      G,
      (g) => tf.conv2d(part<tf.Tensor4D>(dg, g), part<tf.Tensor4D>(wt, g), 1, "valid"),
    ) as tf.Tensor5D,
  );
}

/**
 * dL/dW[i, j, c, o] = Σₙₕᵥ xₚ[n, s·h + i, s·v + j, c]·dy[n, h, v, o]: a valid correlation of xₚ laid out as
 * `[c, Hp, Wp, n]` (channels as the batch, the batch as channels) with dy laid out as the filter
 * `[Ho, Wo, n, o]`, dilated by the stride. Its spatial output starts with the k×k taps we want (plus
 * (Hp − k) mod s unused rows when the stride does not divide evenly).
 */
function convGradFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  k: number,
  s: number,
  p: number,
  G: number,
): tf.Tensor4D {
  const [B, H, W, C] = x.shape, [, Ho, Wo, Co] = dy.shape;
  const ci = C / G, co = Co / G, Hp = H + 2 * p, Wp = W + 2 * p;
  const xp = p > 0 ? tf.pad(x, explicit(p)) : x;
  // [G, ci, Hp, Wp, B] and [G, Ho, Wo, B, co].
  const xt = tf.reshape(tf.transpose(tf.reshape(xp, [B, Hp * Wp, G, ci]), [2, 3, 1, 0]), [G, ci, Hp, Wp, B]);
  const dt = tf.reshape(tf.transpose(tf.reshape(dy, [B, Ho * Wo, G, co]), [2, 1, 0, 3]), [G, Ho, Wo, B, co]);
  const taps = perGroup(G, (g) => {
    const r = tf.conv2d(part<tf.Tensor4D>(xt, g), part<tf.Tensor4D>(dt, g), 1, "valid", "NHWC", s);
    return r.shape[1] === k && r.shape[2] === k ? r : tf.slice(r, [0, 0, 0, 0], [ci, k, k, co]);
  }) as tf.Tensor5D; // [G, ci, k, k, co]
  return tf.reshape(tf.transpose(tf.reshape(taps, [G, ci, k * k, co]), [2, 1, 0, 3]), [k, k, ci, Co]);
}

/**
 * Inference only (no gradient on wasm): conv → + bias → (ReLU) with stock fused kernels, one per group — on
 * wasm one XNNPACK convolution each, with the bias and activation applied in the same pass.
 */
export function conv2dInference(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  o: ConvOptions,
  bias: tf.Tensor1D,
  relu: boolean,
): tf.Tensor4D {
  const s = o.stride ?? 1, p = o.pad ?? 0, G = o.groups ?? 1;
  checkShapes(x, w, G, p);
  const activation = relu ? "relu" : "linear";
  const conv = (x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D) =>
    tf.fused.conv2d({ x, filter, strides: s, pad: p === 0 ? "valid" : explicit(p), bias, activation });
  if (G === 1) return conv(x, w, bias);
  if (useBlockDiagonal(w, G, o.groupedImpl)) return conv(x, blockDiagonal(w, G), bias);
  const xg = toGroups(x, G), wg = groupFilters(w, G), co = w.shape[3] / G;
  // A 1-D slice, not a reshape: wasm's FusedConv2D checks the rank its bias had when it was written.
  return fromGroups(
    perGroup(G, (g) => conv(part(xg, g), part(wg, g), tf.slice(bias, [g * co], [co]))) as tf.Tensor5D,
  );
}

/** The plain tf formulation (per-group `tf.conv2d`, tf's own gradients): what the tests check against. */
export function referenceConv2d(x: tf.Tensor4D, w: tf.Tensor4D, o: ConvOptions = {}): tf.Tensor4D {
  const s = o.stride ?? 1, p = o.pad ?? 0, G = o.groups ?? 1;
  const ci = x.shape[3] / G, co = w.shape[3] / G;
  const outs = Array.from({ length: G }, (_, g) => {
    const xg = tf.slice(x, [0, 0, 0, g * ci], [-1, -1, -1, ci]);
    const wg = tf.slice(w, [0, 0, 0, g * co], [-1, -1, -1, co]);
    return tf.conv2d(xg, wg, s, explicit(p));
  });
  return G === 1 ? outs[0] : tf.concat(outs, 3);
}

// --- BatchNorm ---------------------------------------------------------------------------------------------

export interface BatchStats {
  /** Per-channel batch mean `[C]`. */
  mean: tf.Tensor1D;
  /** Per-channel biased batch variance `[C]` (what normalises the batch). */
  variance: tf.Tensor1D;
  /** Values per channel (B·H·W), for the unbiased running variance. */
  count: number;
}

/**
 * Mean over H and W: `[B, H, W, C]` → `[B, C]`, as an average pool over the whole map, with its gradient
 * (dy / (H·W) broadcast back) written out.
 */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const [B, H, W, C] = x.shape;
  if (H === 1 && W === 1) return tf.reshape(x, [B, C]);
  const f = tf.customGrad((x, _save) => ({
    value: tf.reshape(tf.avgPool(x as tf.Tensor4D, [H, W], 1, "valid"), [B, C]),
    // zeros + a broadcasting add (a fill and an XNNPACK add on wasm) rather than broadcastTo's Tile kernel.
    gradFunc: (dy) =>
      tf.tidy(() => tf.add(tf.zeros([B, H, W, C]), tf.reshape(tf.div(dy, H * W), [B, 1, 1, C]))),
  }));
  return f(x) as tf.Tensor2D;
}

/** Per-channel mean over N, H, W of NHWC `x` → `[C]` (no gradient: used inside hand-written ones). */
function channelMean(x: tf.Tensor4D): tf.Tensor1D {
  const [B, H, W, C] = x.shape;
  const perImage = H === 1 && W === 1
    ? tf.reshape(x, [B, C])
    : tf.reshape(tf.avgPool(x, [H, W], 1, "valid"), [B, C]);
  return tf.mean(perImage, 0);
}

/**
 * BatchNorm with batch statistics (training mode) over N, H, W of NHWC `x`: y = (x − μ)/√(σ² + ε)·γ + β with
 * the biased σ², as torch.nn.BatchNorm2d. The backward pass keeps only x̂ and 1/σ:
 * dx = γ/σ·(g − mean(g) − x̂·mean(g·x̂)), dγ = Σ g·x̂, dβ = Σ g.
 * `onStats` receives the batch statistics for the running averages; they are freed when it returns.
 */
export function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  onStats?: (s: BatchStats) => void,
): tf.Tensor4D {
  const [B, H, W] = x.shape, N = B * H * W;
  const f = tf.customGrad((x, gamma, beta, save) => {
    const { xhat, rstd, y } = tf.tidy(() => {
      const x4 = x as tf.Tensor4D;
      const mean = channelMean(x4);
      const d = tf.sub(x4, mean) as tf.Tensor4D;
      const variance = channelMean(tf.square(d) as tf.Tensor4D);
      onStats?.({ mean, variance, count: N });
      const rstd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor1D;
      const xhat = tf.mul(d, rstd) as tf.Tensor4D;
      const y = tf.add(tf.mul(xhat, gamma as tf.Tensor), beta as tf.Tensor) as tf.Tensor4D;
      return { xhat, rstd, y };
    });
    (save as tf.GradSaveFunc)([xhat, rstd, gamma as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xh, rs, gm] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
          const g = dy as tf.Tensor4D;
          const meanGx = channelMean(tf.mul(g, xh) as tf.Tensor4D), meanG = channelMean(g);
          const dx = tf.mul(tf.sub(tf.sub(g, tf.mul(xh, meanGx)), meanG), tf.mul(rs, gm));
          return [dx, tf.mul(meanGx, N), tf.mul(meanG, N)];
        }),
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** Eval-mode BatchNorm as a per-channel affine map: scale = γ/√(running_var + ε), shift = β − running_mean·scale. */
export function batchNormAffine(
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  runningMean: tf.Tensor1D,
  runningVar: tf.Tensor1D,
  eps: number,
): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, eps))) as tf.Tensor1D;
  return { scale, shift: tf.sub(beta, tf.mul(runningMean, scale)) as tf.Tensor1D };
}
