/**
 * `deno task eval` end to end on a tiny ImageFolder written here: top-1/top-5 equal the model's own
 * predictions on the transformed images, predictions JSONL has the documented fields, unreadable images are
 * named and counted, and bad input (empty folder, wrong path, unknown flag, corrupt checkpoint) is a clear
 * one-line error.
 */
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { deitEvalTransform } from "../lib/data/transforms/eval.ts";
import { loadCheckpoint } from "../lib/io/checkpoint.ts";
import { buildModel } from "../lib/models/registry.ts";
import { FIXTURES, useBackend } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

const SCRIPT = fromFileUrl(new URL("../scripts/eval.ts", import.meta.url));
const CKPT = FIXTURES + "vit_mini_distilled.pth";

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** 3 classes × 4 random-pixel images of assorted sizes, PNG and JPEG. */
async function makeFolder(): Promise<string> {
  const dir = await Deno.makeTempDir();
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const cls of ["ant", "bee", "cat"]) {
    await Deno.mkdir(`${dir}/${cls}`);
    for (let i = 0; i < 4; i++) {
      const w = 30 + 7 * i, h = 40 - 3 * i;
      const px = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rnd() * 256));
      const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
      const ext = i % 2 ? "jpg" : "png";
      await Deno.writeFile(`${dir}/${cls}/${i}.${ext}`, await (i % 2 ? img.jpeg() : img.png()).toBuffer());
    }
  }
  return dir;
}

Deno.test("eval: accuracy and predictions equal the model's own outputs on the transformed images", async () => {
  const dir = await makeFolder();
  const pred = `${dir}/pred.jsonl`;
  const r = await run([
    "--model=deit_mini_distilled_patch8_32",
    `--checkpoint=${CKPT}`,
    `--data=${dir}`,
    `--predictions=${pred}`,
    "--batch-size=5",
    "--backend=cpu",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const lines = (await Deno.readTextFile(pred)).trim().split("\n").map((l) => JSON.parse(l));
  assertEquals(lines.length, 12);
  assertEquals(lines[0].file, "ant/0.png");
  assertEquals(lines[11].target, 2);

  // Recompute independently: transform each file, run the model, rank the softmax.
  await useBackend("cpu");
  const model = buildModel("deit_mini_distilled_patch8_32");
  await loadCheckpoint(model, CKPT);
  let hit1 = 0, hit5 = 0;
  for (const l of lines) {
    // A 32-px model: DeiT's small-image rule (no resize-and-crop; other sizes resized to 32), as training evaluates.
    const x = tf.tensor4d(await deitEvalTransform(`${dir}/${l.file}`, 32), [1, 32, 32, 3]);
    const p = tf.tidy(() => tf.softmax(model.predict(x)));
    const probs = Array.from(p.dataSync());
    const order = probs.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 5).map(([, i]) => i);
    assertEquals(Object.keys(l).sort(), ["file", "prob5", "target", "top5"]);
    assertEquals(l.top5, order, l.file);
    l.prob5.forEach((q: number, j: number) => assert(Math.abs(q - probs[order[j]]) < 1e-5));
    if (order[0] === l.target) hit1++;
    if (order.includes(l.target)) hit5++;
    tf.dispose([x, p]);
  }
  model.dispose();
  const m = r.stdout.match(/top-1 ([\d.]+)%\s+top-5 ([\d.]+)%\s+images (\d+)\s+([\d.]+) images\/s/);
  if (!m) throw new Error(`no summary line in: ${r.stdout}`);
  assertEquals(Number(m[1]).toFixed(3), (100 * hit1 / 12).toFixed(3));
  assertEquals(Number(m[2]).toFixed(3), (100 * hit5 / 12).toFixed(3));
  assertEquals(m[3], "12");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval: an unreadable image is named and counted, the rest evaluated", async () => {
  const dir = await makeFolder();
  await Deno.writeFile(`${dir}/bee/broken.jpg`, new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]));
  const r = await run(["--model=deit_mini_distilled_patch8_32", `--checkpoint=${CKPT}`, `--data=${dir}`]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stderr, "unreadable: bee/broken.jpg");
  assertStringIncludes(r.stdout, "images 12 (+1 unreadable)");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval: bad input is one clear error line, exit code 2", async () => {
  const empty = await Deno.makeTempDir();
  const cases: [string[], string][] = [
    [
      ["--model=deit_mini_distilled_patch8_32", `--checkpoint=${CKPT}`, `--data=${empty}`],
      "no class sub-folders",
    ],
    [
      ["--model=deit_mini_distilled_patch8_32", `--checkpoint=${CKPT}`, "--data=/no/such/dir"],
      "/no/such/dir",
    ],
    [
      ["--model=deit_mini_distilled_patch8_32", `--checkpoint=${CKPT}`, `--data=${empty}`, "--bogus=1"],
      "--bogus",
    ],
    [["--model=nope", `--checkpoint=${CKPT}`, `--data=${empty}`], "unknown model 'nope'"],
    [["--model=deit_mini_distilled_patch8_32", `--data=${empty}`], "--checkpoint is required"],
  ];
  for (const [args, want] of cases) {
    const r = await run(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertStringIncludes(r.stderr, want);
    assert(!r.stderr.includes("    at "), `stack trace printed for ${args.join(" ")}:\n${r.stderr}`);
  }
  const dir = await makeFolder();
  await Deno.writeFile(`${dir}/bad.pth`, new Uint8Array(1000).fill(7));
  const r = await run([
    "--model=deit_mini_distilled_patch8_32",
    `--checkpoint=${dir}/bad.pth`,
    `--data=${dir}`,
  ]);
  assertEquals(r.code, 2, r.stderr);
  assertStringIncludes(r.stderr, "bad.pth");
  await Deno.remove(empty, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});
