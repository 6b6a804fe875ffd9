/** The wasm-heap estimate picks gradient accumulation where a batch would not fit, and names what fits. */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { estimateTrainBytes, fitMicroBatches, largestFittingBatch, oomMessage } from "../lib/train/memory.ts";
import { isWasmAbort, WASM_HEAP_LIMIT_BYTES } from "../lib/accel/engine.ts";
import { modelConfig } from "../lib/models/registry.ts";

Deno.test("heap estimate reproduces the DeiT-Ti measurements it was fitted to (±10%)", () => {
  const c = modelConfig("deit_tiny_patch16_224");
  for (const [batch, mb] of [[8, 1004], [32, 3762]]) {
    const est = estimateTrainBytes(c, batch) / 2 ** 20;
    assert(
      Math.abs(est - mb) / mb < 0.1,
      `batch ${batch}: estimated ${est.toFixed(0)} MB, measured ${mb} MB`,
    );
  }
});

Deno.test("DeiT-Ti batch 32 needs 2 micro-batches on one engine, 16 per engine fit as they are", () => {
  const c = modelConfig("deit_tiny_patch16_224");
  assertEquals(fitMicroBatches(c, 32), 2);
  assertEquals(fitMicroBatches(c, 16), 1);
  const fits = largestFittingBatch(c);
  assert(fits >= 16 && fits < 32, `largest fitting batch ${fits}`);
  assert(
    estimateTrainBytes(c, fits) <= WASM_HEAP_LIMIT_BYTES &&
      estimateTrainBytes(c, fits + 1) > WASM_HEAP_LIMIT_BYTES,
  );
  assertEquals(fitMicroBatches(modelConfig("deit_mini_distilled_patch4_28"), 256), 1);
});

Deno.test("an engine abort becomes a message naming the batch that fits", () => {
  const c = modelConfig("deit_base_patch16_224");
  const msg = oomMessage(c, 64);
  assertStringIncludes(msg, "training step of 64 images does not fit");
  assertStringIncludes(msg, `up to ${largestFittingBatch(c)} images per engine fit`);
  assertStringIncludes(msg, `--micro-batches ${fitMicroBatches(c, 64)}`);
  assert(isWasmAbort(new Error("RuntimeError: Aborted(). Build with -sASSERTIONS for more info.")));
  assert(!isWasmAbort(new Error("input is 28×28×3, the model expects 32×32×3")));
});
