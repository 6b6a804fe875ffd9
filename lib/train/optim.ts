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

/** Optimiser state, for checkpoints: step count and the two moments per parameter. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
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
      this.#m.set(k, tf.variable(tf.zerosLike(p), false));
      this.#v.set(k, tf.variable(tf.zerosLike(p), false));
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

  getState(): AdamWState {
    const copy = (src: Map<string, tf.Variable>) =>
      new Map([...src].map(([k, t]) => [k, (t.dataSync() as Float32Array).slice()]));
    return { step: this.#step, m: copy(this.#m), v: copy(this.#v) };
  }

  setState(s: AdamWState): void {
    for (const [name, src, dst] of [["m", s.m, this.#m], ["v", s.v, this.#v]] as const) {
      for (const [k, t] of dst) {
        const d = src.get(k);
        if (!d || d.length !== t.size) {
          throw new Error(`optimiser state: '${name}.${k}' missing or mis-sized`);
        }
        t.assign(tf.tensor(d, t.shape, "float32"));
      }
    }
    this.#step = s.step;
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
  }
}
