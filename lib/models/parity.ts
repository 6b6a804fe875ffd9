/**
 * Parity with the reference implementation (timm + DeiT on PyTorch) on the fixtures of
 * shared/fixtures/reference/, on the active backend: every compared quantity with its relative error and the
 * fixtures' tolerance (README there: logits/features 1e-4, gradients 1e-3, losses 1e-5). The parity tests and
 * the GPU device check (bench/gpu_check.ts) both read these reports. The ViT runs the ops the switch
 * (lib/accel/switch.ts) selects: wrap a call in `withFastOps(false, …)` to check the reference layers.
 */
import * as tf from "@tensorflow/tfjs";
import { loadCheckpoint } from "../io/checkpoint.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { buildModel, modelConfig } from "./registry.ts";
import { VisionTransformer } from "../vit/model.ts";

export interface ParityItem {
  /** What was compared, e.g. "eval_logits" or "grad.blocks.0.attn.qkv.weight". */
  name: string;
  /** ‖got − want‖ / ‖want‖. */
  relErr: number;
  tol: number;
}

/** ‖a − b‖ / ‖b‖ (the fixtures README's measure). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

/** The items that fail their tolerance (empty: parity holds). */
export const failures = (items: ParityItem[]): ParityItem[] => items.filter((i) => !(i.relErr < i.tol));

/** NCHW data (the fixtures' layout) → NHWC tensor (the model's). */
export function nchwToNhwc(data: Float32Array, shape: readonly number[]): tf.Tensor4D {
  return tf.tidy(() =>
    tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [0, 2, 3, 1])
  );
}

async function fixture(dir: string, name: string) {
  return (await readSafetensors(`${dir}/${name}`)).tensors;
}

function ce(logits: tf.Tensor2D, labels: Int32Array, classes: number): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, "int32"), classes), logits);
}

/** vit_mini (no distillation token): eval logits. */
export async function vitMiniParity(dir: string): Promise<ParityItem[]> {
  const model = new VisionTransformer(modelConfig("vit_mini_patch8_32"));
  try {
    await loadCheckpoint(model, `${dir}/vit_mini.safetensors`);
    const c = await fixture(dir, "vit_mini_case.safetensors");
    const input = c.get("input")!;
    const x = nchwToNhwc(input.data as Float32Array, input.shape);
    const logits = model.predict(x);
    const e = relErr(await logits.data(), c.get("eval_logits")!.data);
    tf.dispose([x, logits]);
    return [{ name: "eval_logits", relErr: e, tol: 1e-4 }];
  } finally {
    model.dispose();
  }
}

/**
 * vit_mini_distilled from `file` (.pth or .safetensors): eval logits, features, the training loss (both heads),
 * training-mode logits of both heads and the gradient of every parameter.
 */
export async function vitDistilledParity(dir: string, file: string): Promise<ParityItem[]> {
  const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"));
  const out: ParityItem[] = [];
  try {
    const report = await loadCheckpoint(model, `${dir}/${file}`);
    if (report.skipped.length) throw new Error(`${file}: skipped ${report.skipped.join(", ")}`);
    const c = await fixture(dir, "vit_mini_distilled_case.safetensors");
    const want = (k: string) => {
      const t = c.get(k);
      if (!t) throw new Error(`the fixture has no ${k}`);
      return t.data;
    };
    const input = c.get("input")!;
    const x = nchwToNhwc(input.data as Float32Array, input.shape);
    const add = async (name: string, t: tf.Tensor, tol: number) =>
      out.push({ name, relErr: relErr(await t.data(), want(name)), tol });

    const evalLogits = model.predict(x);
    await add("eval_logits", evalLogits, 1e-4);
    const feats = tf.tidy(() => model.forwardFeatures(x).tokens);
    await add("features", feats, 1e-4);
    const label = want("label") as Int32Array, teacher = want("teacher_label") as Int32Array;
    const names = model.paramNames;
    const { value, grads } = tf.variableGrads(() => {
      const o = model.forward(x, { training: true });
      return tf.add(tf.mul(ce(o.cls, label, 10), 0.5), tf.mul(ce(o.dist!, teacher, 10), 0.5));
    }, names.map((n) => model.params.get(n)!));
    await add("loss", value, 1e-5);
    const train = model.forward(x, { training: true });
    await add("train_cls_logits", train.cls, 1e-4);
    await add("train_dist_logits", train.dist!, 1e-4);
    const shapes = model.torchShapes();
    for (const n of names) {
      const g = grads[model.params.get(n)!.name];
      if (!g) throw new Error(`no gradient for ${n}`);
      const got = model.toTorch(n, shapes.get(n)!, ((await g.data()) as Float32Array).slice());
      out.push({ name: `grad.${n}`, relErr: relErr(got, want(`grad.${n}`)), tol: 1e-3 });
    }
    const inFixture = [...c.keys()].filter((k) => k.startsWith("grad.")).length;
    if (inFixture !== names.length) {
      throw new Error(`the fixture has ${inFixture} gradients, the model ${names.length}`);
    }
    tf.dispose([x, evalLogits, feats, value, train.cls, train.dist!, ...Object.values(grads)]);
    return out;
  } finally {
    model.dispose();
  }
}

/** regnety_mini: eval logits through the fused inference kernels (`predict`) and the differentiable ops. */
export async function regnetParity(dir: string): Promise<ParityItem[]> {
  const model = buildModel("regnety_mini");
  try {
    await loadCheckpoint(model, `${dir}/regnety_mini.safetensors`);
    const c = await fixture(dir, "regnety_mini_case.safetensors");
    const input = c.get("input")!;
    const x = nchwToNhwc(input.data as Float32Array, input.shape);
    const logits = model.predict(x);
    const evalForward = model.forward(x, { training: false }).cls;
    const want = c.get("eval_logits")!.data;
    const items = [
      { name: "predict eval_logits", relErr: relErr(await logits.data(), want), tol: 1e-4 },
      { name: "forward(eval) eval_logits", relErr: relErr(await evalForward.data(), want), tol: 1e-4 },
    ];
    tf.dispose([x, logits, evalForward]);
    return items;
  } finally {
    model.dispose();
  }
}
