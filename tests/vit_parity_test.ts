/**
 * Parity with the reference implementation (timm + DeiT, PyTorch 1.13) on the fixtures in
 * shared/fixtures/reference, on every backend in PARITY_BACKENDS, and on WebGPU where an adapter exists (Mesa's
 * software adapter in CI). Tolerances from the fixtures' README:
 * logits/features 1e-4 relative, gradients 1e-3, losses 1e-5.
 */
import { assert, assertEquals } from "@std/assert";
import { VisionTransformer } from "../lib/vit/model.ts";
import { modelConfig } from "../lib/models/registry.ts";
import { loadCheckpoint } from "../lib/io/checkpoint.ts";
import { resamplePosEmbed } from "../lib/vit/posembed.ts";
import { fixture, FIXTURES, GPU_BACKENDS, PARITY_BACKENDS, relErr, useBackend } from "./helpers.ts";
import { failures, type ParityItem, vitDistilledParity, vitMiniParity } from "../lib/models/parity.ts";
import { buildModel } from "../lib/models/registry.ts";
import { withFastOps } from "../lib/accel/switch.ts";

/** Both settings of the op switch: the fast ops (lib/accel/ops.ts) and the readable reference layers. */
const OPS = ["fast", "reference"] as const;

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  const e = relErr(got, want);
  assert(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

/** Every item within its tolerance, or a failure naming each one that is not. */
function holds(items: ParityItem[]) {
  const bad = failures(items);
  assert(
    bad.length === 0,
    bad.map((i) => `${i.name}: relative error ${i.relErr.toExponential(2)} ≥ ${i.tol}`).join("\n"),
  );
}

for (
  const [backend, ops] of [...PARITY_BACKENDS, ...GPU_BACKENDS].flatMap((b) =>
    OPS.map((o) => [b, o] as const)
  )
) {
  const fast = ops === "fast";
  Deno.test(`vit_mini eval logits match timm [${backend}, ${ops}]`, async () => {
    await useBackend(backend);
    holds(await withFastOps(fast, () => vitMiniParity(FIXTURES)));
  });

  for (const file of ["vit_mini_distilled.pth", "vit_mini_distilled.safetensors"]) {
    Deno.test(`${file}: logits, features, loss and every gradient match [${backend}, ${ops}]`, async () => {
      await useBackend(backend);
      const items = await withFastOps(fast, () => vitDistilledParity(FIXTURES, file));
      // eval logits, features, loss, 2 training logits, and one gradient per parameter
      assertEquals(items.length, 5 + buildModel("deit_mini_distilled_patch8_32").params.size);
      holds(items);
    });
  }
}

Deno.test("position embedding resampling matches F.interpolate bicubic (4×4 → 6×6, 3×3)", async () => {
  const f = await fixture("posembed_resample.safetensors");
  const src = f.get("pos_embed_4x4")!.data as Float32Array;
  close("6x6", resamplePosEmbed(src, 2, 4, 6, 48), f.get("pos_embed_6x6")!.data, 1e-5);
  close("3x3", resamplePosEmbed(src, 2, 4, 3, 48), f.get("pos_embed_3x3")!.data, 1e-5);
});

Deno.test("a checkpoint with another position grid is resampled on load", async () => {
  await useBackend("cpu");
  // The fixture checkpoint has a 4×4 grid (img 32, patch 8); a 48-pixel model has 6×6.
  const model = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32", { imgSize: 48 }));
  const report = await loadCheckpoint(model, FIXTURES + "vit_mini_distilled.safetensors");
  assertEquals(report.adapted.length, 1);
  assert(report.adapted[0].includes("4×4 to a 6×6"));
  const ckpt = await fixture("vit_mini_distilled.safetensors");
  const want = resamplePosEmbed(ckpt.get("pos_embed")!.data as Float32Array, 2, 4, 6, 48);
  close("pos_embed", await model.params.get("pos_embed")!.data(), want, 1e-6);
  model.dispose();
});
