/** The analysis functions: token similarity, agreement and attention rollout behave as defined. */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { agreement, attentionRollout, tokenSimilarity } from "../lib/distill/analysis.ts";
import { buildModel } from "../lib/models/registry.ts";
import { useBackend } from "./helpers.ts";

Deno.test("token similarity: one value per block, cosines in [-1, 1]; needs a distillation token", async () => {
  await useBackend("cpu");
  const m = buildModel("deit_mini_distilled_patch8_32", {}, 3);
  const x = tf.randomNormal([3, 32, 32, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const s = await tokenSimilarity(m, x);
  assertEquals(tf.memory().numTensors, before);
  assertEquals(s.blocks.length, 2);
  for (const v of [s.input, ...s.blocks, s.output]) assert(v >= -1 - 1e-6 && v <= 1 + 1e-6, `${v}`);
  // Make the two tokens identical (same token and same position embedding): cosine 1 everywhere.
  m.params.get("dist_token")!.assign(m.params.get("cls_token")!);
  const pos = m.params.get("pos_embed")!;
  pos.assign(
    tf.tidy(() =>
      tf.concat([
        tf.slice(pos, [0, 0, 0], [1, 1, -1]),
        tf.slice(pos, [0, 0, 0], [1, 1, -1]),
        tf.slice(pos, [0, 2, 0], [1, -1, -1]),
      ], 1)
    ),
  );
  const same = await tokenSimilarity(m, x);
  for (const v of [same.input, ...same.blocks, same.output]) assert(Math.abs(v - 1) < 1e-5, `${v}`);
  await assertRejects(
    () => tokenSimilarity(buildModel("vit_mini_patch8_32"), x),
    Error,
    "distillation token",
  );
  x.dispose();
  m.dispose();
});

Deno.test("agreement of a model with itself is 1 for every head; rollout rows are distributions over patches", async () => {
  await useBackend("cpu");
  const m = buildModel("deit_mini_distilled_patch8_32", {}, 4);
  const x = tf.randomNormal([5, 32, 32, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const self = await agreement(m, { predict: (z) => m.predict(z) }, x);
  assertEquals(self.both, 1);
  assertEquals(self.count, 5);
  const r = await attentionRollout(m, x);
  assertEquals(r.grid, 4);
  assertEquals(r.cls.length, 5);
  for (const row of [...r.cls, ...r.dist!]) {
    assertEquals(row.length, 16);
    const sum = row.reduce((a, b) => a + b, 0);
    assert(row.every((v) => v >= 0) && sum > 0 && sum <= 1 + 1e-5, `${sum}`);
  }
  x.dispose();
  m.dispose();
});

Deno.test("the agreement table puts the paper's Table 4 beside each head it has, and nothing where it has none", async () => {
  const { agreementTable } = await import("../lib/report/analysis.ts");
  const t = agreementTable({
    source: "test",
    images: 4,
    similarity: { input: 0, blocks: [], output: 0 },
    agreement: [
      { student: "no distillation", cls: 50, dist: null, both: null },
      { student: "soft", cls: 75, dist: null, both: null },
      { student: "DeiT⚗", cls: 25, dist: 100, both: 75 },
    ],
    attention: { grid: 1, cls: [], dist: null, images: [] },
  });
  const cells = t.rows.map((r) => [r.cls, r.paper_cls, r.dist, r.paper_dist, r.both, r.paper_both]);
  assertEquals(cells, [
    [50, 86.7, null, null, null, null], // 1 − 0.133
    [75, null, null, null, null, null], // not in Table 4
    [25, 88.8, 100, 90.0, 75, 89.8], // 1 − 0.112, 0.100, 0.102
  ]);
  assertEquals(t.columns.filter((c) => c.title === "paper").length, 3);
});
