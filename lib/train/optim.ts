/**
 * Optimisers over a model's named parameters: AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW,
 * as DeiT uses it) and DeiT's rule for which parameters get no decay.
 */
import * as tf from "@tensorflow/tfjs";

/**
 * DeiT / timm 0.3.2 (`add_weight_decay` with the model's `no_weight_decay()`): no decay on 1-D tensors,
 * biases, `pos_embed` and `cls_token`. The distillation token *is* decayed (it is not in DeiT's skip list).
 */
export function noWeightDecay(name: string, torchShape: readonly number[]): boolean {
  return torchShape.length <= 1 || name.endsWith(".bias") || name === "pos_embed" || name === "cls_token";
}

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (DeiT: 0.05). */
  weightDecay?: number;
  /** Parameters that get no decay (see `noWeightDecay`). */
  noDecay?: ReadonlySet<string>;
}

/** Optimiser state, for checkpoints: step count and per-parameter slots (AdamW: m, v; SGD: buf). */
export interface OptimizerState {
  step: number;
  slots: Record<string, Record<string, Float32Array>>;
}

/** Tensors' values on the host, read asynchronously (a GPU backend has no synchronous read under Deno). */
export async function readAll(vars: ReadonlyMap<string, tf.Tensor>): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  // `data()` may hand out the backend's own buffer: copy before anything can alias it.
  for (const [k, t] of vars) out[k] = ((await t.data()) as Float32Array).slice();
  return out;
}

async function exportSlots(
  slots: Record<string, Map<string, tf.Variable>>,
): Promise<OptimizerState["slots"]> {
  const out: OptimizerState["slots"] = {};
  for (const [name, m] of Object.entries(slots)) out[name] = await readAll(m);
  return out;
}

function importSlots(slots: Record<string, Map<string, tf.Variable>>, s: OptimizerState["slots"]): void {
  for (const [name, dst] of Object.entries(slots)) {
    for (const [k, t] of dst) {
      const d = s[name]?.[k];
      if (!d || d.length !== t.size) throw new Error(`optimiser state: '${name}.${k}' missing or mis-sized`);
      t.assign(tf.tensor(d, t.shape, "float32"));
    }
  }
}

/** A zero-filled, non-trainable variable of `p`'s shape (the temporary tensor is released: no leak). */
function slotLike(p: tf.Variable): tf.Variable {
  const zeros = tf.zerosLike(p);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

export class AdamW implements Optimizer {
  readonly params: Map<string, tf.Variable>;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly noDecay: ReadonlySet<string>;
  #step = 0;
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.params = params;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.05;
    this.noDecay = opts.noDecay ?? new Set();
    for (const [k, p] of params) {
      this.#m.set(k, slotLike(p));
      this.#v.set(k, slotLike(p));
    }
  }

  get step(): number {
    return this.#step;
  }

  /**
   * One update with learning rate `lr`, as torch.optim.AdamW: p ← p·(1 − lr·wd);
   * m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
   * Parameters without a gradient are left untouched (their moments too), as PyTorch skips them.
   */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    this.#step++;
    const t = this.#step;
    const bc1 = 1 - this.beta1 ** t, bc2 = 1 - this.beta2 ** t;
    tf.tidy(() => {
      for (const [k, p] of this.params) {
        const g = grads.get(k);
        if (!g) continue;
        const m = this.#m.get(k)!, v = this.#v.get(k)!;
        const wd = this.noDecay.has(k) ? 0 : this.weightDecay;
        const decayed = wd > 0 ? tf.mul(p, 1 - lr * wd) : p;
        const m1 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v1 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(bc2)), this.eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), lr / bc1)));
        m.assign(m1);
        v.assign(v1);
      }
    });
  }

  async getState(): Promise<OptimizerState> {
    return { step: this.#step, slots: await exportSlots({ m: this.#m, v: this.#v }) };
  }

  setState(s: OptimizerState): void {
    importSlots({ m: this.#m, v: this.#v }, s.slots);
    this.#step = s.step;
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
  }
}

/** What the training loop needs of an optimiser. */
export interface Optimizer {
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void;
  getState(): Promise<OptimizerState>;
  setState(s: OptimizerState): void;
  dispose(): void;
}

export interface SgdOptions {
  momentum?: number;
  /** L2 weight decay added to the gradient (PyTorch SGD's coupled decay). */
  weightDecay?: number;
  noDecay?: ReadonlySet<string>;
}

/** SGD with momentum as torch.optim.SGD (dampening 0, not Nesterov): b ← μ·b + (g + wd·p); p ← p − lr·b. */
export class Sgd implements Optimizer {
  readonly #params: Map<string, tf.Variable>;
  readonly #buf = new Map<string, tf.Variable>();
  readonly momentum: number;
  readonly weightDecay: number;
  readonly noDecay: ReadonlySet<string>;
  #started = false;

  constructor(params: Map<string, tf.Variable>, opts: SgdOptions = {}) {
    this.#params = params;
    this.momentum = opts.momentum ?? 0.9;
    this.weightDecay = opts.weightDecay ?? 0;
    this.noDecay = opts.noDecay ?? new Set();
    for (const [k, p] of params) this.#buf.set(k, slotLike(p));
  }

  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    tf.tidy(() => {
      for (const [k, p] of this.#params) {
        let g = grads.get(k);
        if (!g) continue;
        const wd = this.noDecay.has(k) ? 0 : this.weightDecay;
        if (wd > 0) g = tf.add(g, tf.mul(p, wd));
        const b = this.#buf.get(k)!;
        // PyTorch initialises the buffer with the first gradient itself.
        const nb = this.#started && this.momentum > 0 ? tf.add(tf.mul(b, this.momentum), g) : g;
        b.assign(nb);
        p.assign(tf.sub(p, tf.mul(nb, lr)));
      }
    });
    this.#started = true;
  }

  async getState(): Promise<OptimizerState> {
    return { step: this.#started ? 1 : 0, slots: await exportSlots({ buf: this.#buf }) };
  }

  setState(s: OptimizerState): void {
    importSlots({ buf: this.#buf }, s.slots);
    this.#started = s.step > 0;
  }

  dispose(): void {
    for (const b of this.#buf.values()) b.dispose();
  }
}

/**
 * Scale gradients so that their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_: the
 * coefficient maxNorm / (norm + 1e-6), clamped at 1, multiplies every gradient). Computed on the device — nothing
 * is read back — and returns the norm before clipping as a scalar tensor (the caller disposes it); the map's
 * gradients are replaced by scaled ones (the inputs are disposed).
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): tf.Scalar {
  const norm = tf.tidy(() =>
    tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))) as tf.Scalar
  );
  const coef = tf.tidy(() => tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1));
  for (const [k, g] of grads) {
    grads.set(k, tf.mul(g, coef));
    g.dispose();
  }
  coef.dispose();
  return norm;
}

/** Exponential moving average of the weights (timm ModelEma): ema ← d·ema + (1 − d)·w after each step. */
export class Ema {
  readonly decay: number;
  readonly shadow = new Map<string, tf.Variable>();

  constructor(params: Map<string, tf.Variable>, decay = 0.99996) {
    this.decay = decay;
    for (const [k, p] of params) {
      const copy = tf.clone(p);
      this.shadow.set(k, tf.variable(copy, false));
      copy.dispose(); // the variable keeps the data alive
    }
  }

  update(params: Map<string, tf.Variable>): void {
    tf.tidy(() => {
      for (const [k, e] of this.shadow) {
        e.assign(tf.add(tf.mul(e, this.decay), tf.mul(params.get(k)!, 1 - this.decay)));
      }
    });
  }

  dispose(): void {
    for (const e of this.shadow.values()) e.dispose();
  }
}
