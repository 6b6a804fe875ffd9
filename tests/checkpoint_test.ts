/**
 * Loading checkpoints into models: every key and shape checked, errors name the tensor, non-strict loads skip
 * differing heads, a failed load leaves the model unchanged, and saved safetensors load back exactly.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { loadCheckpoint, loadStateDict, saveSafetensors, stateDictOf } from "../lib/io/checkpoint.ts";
import { CheckpointError, type StateDict } from "../lib/io/tensor.ts";
import { modelConfig } from "../lib/models/registry.ts";
import { VisionTransformer } from "../lib/vit/model.ts";
import { fixture, FIXTURES, useBackend } from "./helpers.ts";

const mini = () => new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { seed: 1 });

async function fixtureDict(): Promise<StateDict> {
  return await fixture("vit_mini_distilled.safetensors");
}

Deno.test("a missing, an unexpected and a mis-shaped tensor are each named; the model is left unchanged", async () => {
  await useBackend("cpu");
  const m = mini();
  const before = m.params.get("blocks.0.attn.qkv.weight")!.dataSync().slice();
  const sd = await fixtureDict();
  sd.delete("blocks.1.mlp.fc2.bias");
  sd.set("blocks.9.extra", { dtype: "F32", shape: [2], data: new Float32Array(2) });
  sd.set("norm.weight", { dtype: "F32", shape: [47], data: new Float32Array(47) });
  const err = assertThrows(() => loadStateDict(m, sd, { source: "x.pth" }), CheckpointError);
  assert(err.message.includes("x.pth"));
  assert(err.message.includes("missing key 'blocks.1.mlp.fc2.bias'"));
  assert(err.message.includes("unexpected key 'blocks.9.extra'"));
  assert(err.message.includes("'norm.weight' has shape [47], the model expects [48]"));
  assertEquals(m.params.get("blocks.0.attn.qkv.weight")!.dataSync(), before);
  m.dispose();
});

Deno.test("non-strict load skips heads whose class count differs and says so; strict refuses", async () => {
  await useBackend("cpu");
  const m = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32", { numClasses: 5 }), {
    seed: 2,
  });
  const headBefore = m.params.get("head.weight")!.dataSync().slice();
  await assertRejects(
    () => loadCheckpoint(m, FIXTURES + "vit_mini_distilled.pth"),
    CheckpointError,
    "head.weight",
  );
  const r = await loadCheckpoint(m, FIXTURES + "vit_mini_distilled.pth", { strict: false });
  assertEquals(r.skipped.length, 4);
  assert(
    r.skipped.every((s) => /^head(_dist)?\.(weight|bias) .*class count differs/.test(s)),
    r.skipped.join("\n"),
  );
  assertEquals(m.params.get("head.weight")!.dataSync(), headBefore);
  const sd = await fixtureDict();
  assertEquals(Array.from(m.params.get("norm.weight")!.dataSync()), Array.from(sd.get("norm.weight")!.data));
  m.dispose();
});

Deno.test("a plain checkpoint into a distilled model names the missing distillation weights", async () => {
  await useBackend("cpu");
  const m = mini();
  const err = await assertRejects(
    () => loadCheckpoint(m, FIXTURES + "vit_mini.safetensors"),
    CheckpointError,
  );
  assert(err.message.includes("missing key 'dist_token'"));
  assert(err.message.includes("missing key 'head_dist.weight'"));
  m.dispose();
});

Deno.test("saved safetensors load back to identical weights (torch layout on disk)", async () => {
  await useBackend("cpu");
  const m = mini();
  await loadCheckpoint(m, FIXTURES + "vit_mini_distilled.pth");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/w.safetensors`;
  await saveSafetensors(m, path, { arch: "test" });
  const onDisk = await stateDictOf(m);
  const ref = await fixtureDict();
  for (const [k, t] of ref) assertEquals(Array.from(onDisk.get(k)!.data), Array.from(t.data), k);
  const m2 = new VisionTransformer(modelConfig("deit_mini_distilled_patch8_32"), { seed: 9 });
  await loadCheckpoint(m2, path);
  for (const k of m.paramNames) {
    assertEquals(Array.from(m2.params.get(k)!.dataSync()), Array.from(m.params.get(k)!.dataSync()), k);
  }
  await Deno.remove(dir, { recursive: true });
  tf.dispose([]);
  m.dispose();
  m2.dispose();
});

Deno.test("a missing or truncated checkpoint file is a clear CheckpointError", async () => {
  await useBackend("cpu");
  const m = mini();
  await assertRejects(
    () => loadCheckpoint(m, "/nonexistent/model.pth"),
    CheckpointError,
    "/nonexistent/model.pth",
  );
  const dir = await Deno.makeTempDir();
  const bytes = await Deno.readFile(FIXTURES + "vit_mini_distilled.pth");
  await Deno.writeFile(`${dir}/cut.pth`, bytes.subarray(0, bytes.length >> 1));
  await assertRejects(() => loadCheckpoint(m, `${dir}/cut.pth`), CheckpointError, "cut.pth");
  await Deno.remove(dir, { recursive: true });
  m.dispose();
});
