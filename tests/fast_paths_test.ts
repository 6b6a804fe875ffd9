/**
 * The fast ops change nothing but speed: a training run with them and one with the plain tf formulation give
 * the same losses step after step (to float precision), and both match the reference fixtures.
 */
import { assert } from "@std/assert";
import { PARITY_BACKENDS, relErr, trainTiny, useBackend } from "./helpers.ts";

for (const backend of PARITY_BACKENDS) {
  Deno.test(`fast and reference paths train identically over 5 AdamW steps [${backend}]`, async () => {
    await useBackend(backend);
    const fast = trainTiny(5, "fast"), ref = trainTiny(5, "reference");
    fast.losses.forEach((l, i) => {
      const e = Math.abs(l - ref.losses[i]) / Math.abs(ref.losses[i]);
      assert(e < 1e-5, `step ${i}: fast ${l} vs reference ${ref.losses[i]} (${e})`);
    });
    assert(ref.losses[4] < ref.losses[0], "the loss should fall on a repeated tiny problem");
    assert(relErr(fast.weights, ref.weights) < 1e-4);
  });
}
