/**
 * The fast ops change nothing but speed: a training run with them and one with the readable reference layers
 * give the same losses step after step (to float precision), the same attention maps and block tokens — and
 * the two really are different code: the reference run calls no fast op, the fast run calls every one.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "@std/assert";
import { type FastOp, fastOpCalls } from "../lib/accel/ops.ts";
import { withFastOps } from "../lib/accel/switch.ts";
import { modelConfig } from "../lib/models/registry.ts";
import { VisionTransformer } from "../lib/vit/model.ts";
import { PARITY_BACKENDS, relErr, trainTiny, useBackend } from "./helpers.ts";

/** `fn`'s result and the fast-op calls it made, by op. */
async function counting<T>(fn: () => T | Promise<T>): Promise<{ out: T; calls: Record<FastOp, number> }> {
  const before = fastOpCalls();
  const out = await fn();
  const after = fastOpCalls();
  const calls = Object.fromEntries(
    Object.entries(after).map(([k, n]) => [k, n - before[k as FastOp]]),
  ) as Record<FastOp, number>;
  return { out, calls };
}

const NONE: Record<FastOp, number> = { dense: 0, gelu: 0, layerNorm: 0, attention: 0 };

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths train identically over 5 AdamW steps [${backend}]`, async () => {
    await useBackend(backend);
    const fast = await counting(() => withFastOps(true, () => trainTiny(5)));
    const ref = await counting(() => withFastOps(false, () => trainTiny(5)));
    assertEquals(ref.calls, NONE, "the reference run called fast ops");
    // 2 blocks: per forward pass 2 attentions, 2 GELUs, 5 LayerNorms, 1 + 4·2 + 2 Linears (patches, blocks, heads)
    assertEquals(fast.calls, { dense: 5 * 11, gelu: 5 * 2, layerNorm: 5 * 5, attention: 5 * 2 });
    fast.out.losses.forEach((l, i) => {
      const e = Math.abs(l - ref.out.losses[i]) / Math.abs(ref.out.losses[i]);
      assert(e < 1e-5, `step ${i}: fast ${l} vs reference ${ref.out.losses[i]} (${e})`);
    });
    assert(ref.out.losses[4] < ref.out.losses[0], "the loss should fall on a repeated tiny problem");
    assert(relErr(fast.out.weights, ref.out.weights) < 1e-4);
  });
}

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths give the same attention maps and block tokens [${backend}]`, async () => {
    await useBackend(backend);
    const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { seed: 3 });
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const run = (fast: boolean) =>
      counting(() =>
        withFastOps(fast, () => {
          const f = model.forwardFeatures(x, { attention: true, blockTokens: true });
          const out = [f.tokens, ...f.attention!, ...f.blocks!].map((t) => Array.from(t.dataSync()));
          tf.dispose([f.tokens, ...f.attention!, ...f.blocks!]);
          return out;
        })
      );
    const fast = await run(true), ref = await run(false);
    assertEquals(ref.calls, NONE, "the reference run called fast ops");
    assertEquals(fast.calls, { dense: 1 + 2 * 4, gelu: 2, layerNorm: 5, attention: 2 });
    assert(fast.out.length === 1 + 2 * 2, `tokens + 2 attention maps + 2 blocks, got ${fast.out.length}`);
    fast.out.forEach((v, i) => assert(relErr(v, ref.out[i]) < 1e-5, `output ${i}: ${relErr(v, ref.out[i])}`));
    tf.dispose(x);
    model.dispose();
  });
}
