/**
 * Tests for lib/data: ImageFolder scanning, the DeiT eval transform and the batch loader.
 * Tiny images are written with sharp into a temporary folder per test.
 */
import sharp from "sharp";
import { assert, assertAlmostEquals, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { DataError } from "../lib/data/dataset.ts";
import { compareCodePoints, scanImageFolder } from "../lib/data/imagefolder.ts";
import {
  decodeRgb,
  IMAGENET_MEAN,
  IMAGENET_STD,
  pyRound,
  resizeBicubicPil,
  type RgbImage,
} from "../lib/data/image.ts";
import {
  cropNormalize,
  cropOffset,
  DEFAULT_CROP_PCT,
  evalTransform,
  resizedSize,
  resizeTarget,
} from "../lib/data/transforms/eval.ts";
import { type EvalBatch, evalBatches } from "../lib/data/eval_loader.ts";

// ---------------------------------------------------------------------------------------------------- helpers

/** Deterministic pseudo-random bytes (LCG), so failures reproduce. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function constantImage(width: number, height: number, rgb: readonly number[]): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return data;
}

function raw(data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) {
  return sharp(data, { raw: { width, height, channels } });
}

async function writePng(
  path: string,
  data: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 2 | 3 | 4,
) {
  let img = raw(data, width, height, channels);
  if (channels <= 2) img = img.toColourspace("b-w"); // keep it a grey PNG (sharp writes sRGB by default)
  await Deno.writeFile(path, await img.png().toBuffer());
}

async function writeJpeg(path: string, data: Uint8Array, width: number, height: number, channels: 1 | 3) {
  let img = raw(data, width, height, channels);
  if (channels === 1) img = img.toColourspace("b-w");
  await Deno.writeFile(path, await img.jpeg({ quality: 95 }).toBuffer());
}

/** torch's ToTensor + Normalize of one uint8 value, in float32 steps. */
function normalized(v: number, c: number): number {
  const f = Math.fround;
  return f(f(f(v / 255) - f(IMAGENET_MEAN[c])) / f(IMAGENET_STD[c]));
}

/** Writes the files (name -> bytes; empty bytes for a placeholder) and folders (name ending in "/") below a temp dir. */
async function makeTree(entries: Record<string, Uint8Array | null>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "data_test_" });
  for (const [rel, bytes] of Object.entries(entries)) {
    const path = `${root}/${rel}`;
    if (rel.endsWith("/")) {
      await Deno.mkdir(path, { recursive: true });
      continue;
    }
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, bytes ?? new Uint8Array());
  }
  return root;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "data_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------------- imagefolder

Deno.test("compareCodePoints sorts like Python's sorted() on str", () => {
  const names = ["b", "\u{1F600}", "a", "\uFF01", "B", "ab", "a-b", "a/b"];
  assertEquals(names.toSorted(compareCodePoints), ["B", "a", "a-b", "a/b", "ab", "b", "\uFF01", "\u{1F600}"]);
  // JavaScript's default (UTF-16) order differs for characters above U+FFFF:
  assertEquals(names.toSorted().slice(-2), ["\u{1F600}", "\uFF01"]);
});

Deno.test("scanImageFolder: classes, targets, rel paths, recursive files in os.walk order", async () => {
  const root = await makeTree({
    "ant/b.jpg": null,
    "ant/A.JPEG": null, // extension match is case-insensitive
    "ant/z.png": null,
    "ant/notes.txt": null, // not an image
    "ant/sub/c.png": null, // sub-folders come after the folder's own files ("ant/z.png" first)
    "ant/sub/deeper/d.webp": null,
    "ant/sub-x/e.png": null, // "ant/sub" < "ant/sub-x" < "ant/sub/deeper" by full path
    "bird/x.png": null,
    "Zebra/z1.png": null, // upper case sorts first
    "README.txt": null, // a file at the top is not a class
  });
  try {
    const ds = await scanImageFolder(root);
    assertEquals(ds.root, root);
    assertEquals(ds.classes, ["Zebra", "ant", "bird"]);
    assertEquals(ds.samples.map((s) => [s.rel, s.target]), [
      ["Zebra/z1.png", 0],
      ["ant/A.JPEG", 1],
      ["ant/b.jpg", 1],
      ["ant/z.png", 1],
      ["ant/sub/c.png", 1],
      ["ant/sub-x/e.png", 1],
      ["ant/sub/deeper/d.webp", 1],
      ["bird/x.png", 2],
    ]);
    for (const s of ds.samples) assertEquals(s.path, `${root}/${s.rel}`);
    // A relative path is resolved against the working directory.
    const up = "../".repeat(Deno.cwd().split("/").filter((p) => p).length);
    const rel = await scanImageFolder(`${up}.${root}/`);
    assertEquals(rel.root, root);
    assertEquals(rel.samples.map((s) => s.path), ds.samples.map((s) => s.path));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanImageFolder: errors name the problem", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/nope`;
    let err = await assertRejects(() => scanImageFolder(missing), DataError);
    assert(err.message.includes(missing) && err.message.includes("does not exist"), err.message);

    await Deno.writeTextFile(`${dir}/file.txt`, "x");
    err = await assertRejects(() => scanImageFolder(`${dir}/file.txt`), DataError);
    assert(err.message.includes("is not a folder"), err.message);

    await Deno.mkdir(`${dir}/flat`);
    await Deno.writeFile(`${dir}/flat/a.png`, new Uint8Array());
    err = await assertRejects(() => scanImageFolder(`${dir}/flat`), DataError);
    assert(err.message.includes("no class sub-folders"), err.message);

    await Deno.mkdir(`${dir}/empty/a/sub`, { recursive: true });
    await Deno.mkdir(`${dir}/empty/b`);
    await Deno.writeTextFile(`${dir}/empty/b/readme.txt`, "x");
    err = await assertRejects(() => scanImageFolder(`${dir}/empty`), DataError);
    assert(err.message.includes("is empty"), err.message);

    await Deno.mkdir(`${dir}/partly/full`, { recursive: true });
    await Deno.mkdir(`${dir}/partly/hollow`);
    await Deno.writeFile(`${dir}/partly/full/a.jpg`, new Uint8Array());
    err = await assertRejects(() => scanImageFolder(`${dir}/partly`), DataError);
    assert(err.message.includes(`${dir}/partly/hollow`), err.message);
    assert(!err.message.includes("partly/full"), err.message);
  });
});

// ---------------------------------------------------------------------------------------------------- transform maths

Deno.test("pyRound rounds half to even like Python's round()", () => {
  assertEquals([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4, 2.6, 7].map(pyRound), [0, 2, 2, 4, -0, -2, 2, 3, 7]);
});

Deno.test("resize target and resized size follow DeiT / torchvision", () => {
  assertEquals(DEFAULT_CROP_PCT, 0.875);
  assertEquals(resizeTarget(224), 256);
  assertEquals(resizeTarget(384), 438); // int(384 / 0.875) = int(438.857...)
  assertEquals(resizeTarget(8), 9);
  assertEquals(resizeTarget(384, 1), 384);
  assertEquals(resizedSize(500, 375, 256), [341, 256]); // int(256 * 500 / 375) = int(341.33)
  assertEquals(resizedSize(375, 500, 256), [256, 341]);
  assertEquals(resizedSize(333, 500, 256), [256, 384]); // 384.38 truncated
  assertEquals(resizedSize(256, 256, 256), [256, 256]);
  assertEquals(resizedSize(100, 299, 256), [256, 765]); // 765.44
});

Deno.test("cropOffset and padding follow torchvision center_crop", () => {
  assertEquals(cropOffset(9, 8), 0); // round(0.5) = 0 (half to even), not 1
  assertEquals(cropOffset(11, 8), 2); // round(1.5) = 2
  assertEquals(cropOffset(12, 8), 2);
  assertEquals(cropOffset(341, 224), 58); // round(58.5) = 58
  assertEquals(cropOffset(5, 8), -1); // pad (8 - 5) // 2 = 1 before, 2 after
  // A 6x4 image cropped to 8: padded with pixel value 0, i.e. normalised (0 - mean) / std.
  const img: RgbImage = { width: 6, height: 4, data: constantImage(6, 4, [255, 255, 255]) };
  const out = cropNormalize(img, 8);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const inside = y >= 2 && y < 6 && x >= 1 && x < 7;
      for (let c = 0; c < 3; c++) {
        assertEquals(out[(y * 8 + x) * 3 + c], normalized(inside ? 255 : 0, c), `${x},${y}`);
      }
    }
  }
});

Deno.test("resizeBicubicPil reproduces Pillow's own BICUBIC test vectors", () => {
  // Pillow Tests/test_image_resample.py, TestImagingCoreResampleAccuracy: `make_case` is an image with two
  // dark and two bright quadrants; `make_sample` rebuilds the expected image from its top-left quarter.
  const makeCase = (n: number, color: number): RgbImage => {
    const data = new Uint8Array(n * n * 3);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        data.fill((x < n / 2) === (y < n / 2) ? color : 255 - color, (y * n + x) * 3, (y * n + x) * 3 + 3);
      }
    }
    return { width: n, height: n, data };
  };
  const makeSample = (hex: string, n: number): number[] => {
    const v = hex.split(" ").map((h) => parseInt(h, 16));
    const out = new Array<number>(n * n);
    const h = n / 2;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < h; x++) {
        const val = v[y * h + x];
        out[y * n + x] = val;
        out[(n - y - 1) * n + n - x - 1] = val;
        out[(n - y - 1) * n + x] = 255 - val;
        out[y * n + n - x - 1] = 255 - val;
      }
    }
    return out;
  };
  const cases: [number, number, string][] = [
    [12, 6, "e1 e3 d4 e3 e5 d6 d4 d6 c9"], // test_reduce_bicubic
    [4, 8, "e1 e5 ee b9 e5 e9 f3 bc ee f3 fd c1 b9 bc c1 a2"], // test_enlarge_bicubic
  ];
  for (const [n, m, hex] of cases) {
    const out = resizeBicubicPil(makeCase(n, 0xe1), m, m);
    assertEquals(out.width, m);
    assertEquals(out.height, m);
    const expected = makeSample(hex, m);
    for (let c = 0; c < 3; c++) {
      assertEquals(Array.from({ length: m * m }, (_, i) => out.data[i * 3 + c]), expected);
    }
  }
  // Only one axis changes: a single pass.
  const img: RgbImage = { width: 10, height: 7, data: randomBytes(10 * 7 * 3, 5) };
  assertEquals(resizeBicubicPil(img, 10, 5).width, 10);
  assertEquals(resizeBicubicPil(img, 4, 7).data.length, 4 * 7 * 3);
  assertEquals(resizeBicubicPil(img, 10, 7).data, img.data);
});

// ---------------------------------------------------------------------------------------------------- decoding

Deno.test("evalTransform: constant colour gives ((c / 255) - mean) / std everywhere", async () => {
  await withTempDir(async (dir) => {
    const rgb = [10, 128, 250];
    await writePng(`${dir}/c.png`, constantImage(20, 15, rgb), 20, 15, 3); // resampled to 12x9
    for (const resampler of ["sharp", "pil"] as const) {
      const out = await evalTransform(`${dir}/c.png`, { size: 8, resampler });
      assertEquals(out.length, 8 * 8 * 3);
      for (let i = 0; i < out.length; i++) {
        const c = i % 3;
        assertEquals(out[i], normalized(rgb[c], c), `${resampler} [${i}]`);
        assertAlmostEquals(out[i], (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], 1e-6);
      }
    }
  });
});

Deno.test("evalTransform: an image already at the resize target is cropped, not resampled", async () => {
  await withTempDir(async (dir) => {
    // size 8 -> shorter side 9. A 9x12 (w x h) image already has that size: torchvision returns it unchanged and
    // center_crop takes rows round(4 / 2) = 2.. and columns round(1 / 2) = 0.. (half to even).
    for (const [w, h, top, left] of [[9, 12, 2, 0], [12, 9, 0, 2], [9, 11, 2, 0]]) {
      const pixels = randomBytes(w * h * 3, w * 100 + h);
      await writePng(`${dir}/r.png`, pixels, w, h, 3);
      const out = await evalTransform(`${dir}/r.png`, { size: 8 });
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          for (let c = 0; c < 3; c++) {
            const v = pixels[((y + top) * w + (x + left)) * 3 + c];
            assertEquals(out[(y * 8 + x) * 3 + c], normalized(v, c), `${w}x${h} at ${x},${y},${c}`);
          }
        }
      }
    }
  });
});

Deno.test("decodeRgb: grey becomes 3 equal channels, alpha is dropped without compositing", async () => {
  await withTempDir(async (dir) => {
    const grey = randomBytes(9 * 9, 7);
    await writePng(`${dir}/g.png`, grey, 9, 9, 1);
    const g = await decodeRgb(`${dir}/g.png`);
    assertEquals([g.width, g.height], [9, 9]);
    for (let i = 0; i < 81; i++) {
      assertEquals([g.data[i * 3], g.data[i * 3 + 1], g.data[i * 3 + 2]], [grey[i], grey[i], grey[i]]);
    }
    const out = await evalTransform(`${dir}/g.png`, { size: 8 }); // 9x9 is the target: no resampling
    for (let i = 0; i < 64; i++) {
      const v = grey[Math.floor(i / 8) * 9 + (i % 8)];
      assertEquals([out[i * 3], out[i * 3 + 1], out[i * 3 + 2]], [
        normalized(v, 0),
        normalized(v, 1),
        normalized(v, 2),
      ]);
    }

    await writeJpeg(`${dir}/g.jpg`, grey, 9, 9, 1);
    const gj = await decodeRgb(`${dir}/g.jpg`);
    for (let i = 0; i < 81; i++) {
      assert(gj.data[i * 3] === gj.data[i * 3 + 1] && gj.data[i * 3] === gj.data[i * 3 + 2]);
    }

    const greyAlpha = randomBytes(9 * 9 * 2, 8);
    await writePng(`${dir}/ga.png`, greyAlpha, 9, 9, 2);
    const ga = await decodeRgb(`${dir}/ga.png`);
    for (let i = 0; i < 81; i++) {
      assertEquals(ga.data.slice(i * 3, i * 3 + 3), new Uint8Array(3).fill(greyAlpha[i * 2]));
    }

    // RGBA with alpha 0..255: PIL's convert("RGB") keeps the colour values whatever the alpha.
    const rgba = randomBytes(9 * 9 * 4, 9);
    await writePng(`${dir}/a.png`, rgba, 9, 9, 4);
    const a = await decodeRgb(`${dir}/a.png`);
    for (let i = 0; i < 81; i++) assertEquals(a.data.slice(i * 3, i * 3 + 3), rgba.slice(i * 4, i * 4 + 3));
  });
});

Deno.test("decodeRgb: EXIF orientation and ICC profiles are ignored, like PIL", async () => {
  const pixels = randomBytes(12 * 9 * 3, 11);
  const rotated = await raw(pixels, 12, 9, 3).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  assertEquals((await sharp(rotated).metadata()).orientation, 6);
  const img = await decodeRgb(rotated);
  assertEquals([img.width, img.height], [12, 9]); // not turned to 9x12

  // A PNG tagged Display P3: colour management would change saturated colours, PIL keeps the stored values.
  const red = constantImage(4, 4, [255, 0, 0]);
  const p3 = await raw(red, 4, 4, 3).withIccProfile("p3").png().toBuffer();
  const stored = await decodeRgb(p3);
  const managed = await sharp(p3).raw().toBuffer();
  assert(stored.data[1] !== managed[1] || stored.data[0] !== managed[0], "profile was applied");
});

Deno.test("decodeRgb: CMYK uses Pillow's cmyk2rgb formula", async () => {
  const cmykJpeg = await raw(constantImage(8, 8, [200, 40, 90]), 8, 8, 3).toColourspace("cmyk").jpeg()
    .toBuffer();
  const cmyk = await sharp(cmykJpeg).pipelineColourspace("cmyk").toColourspace("cmyk").raw().toBuffer();
  const [c, m, y, k] = cmyk;
  const pil = (v: number) => {
    const nk = 255 - k;
    const t = v * nk + 128;
    return Math.max(0, nk - (((t >> 8) + t) >> 8));
  };
  const img = await decodeRgb(cmykJpeg);
  assertEquals(Array.from(img.data.slice(0, 3)), [pil(c), pil(m), pil(y)]);
});

Deno.test("decode failures are DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    const bad = `${dir}/x.jpg`;
    await Deno.writeFile(bad, randomBytes(500, 3));
    let err = await assertRejects(() => evalTransform(bad, { size: 8 }), DataError);
    assert(err.message.includes(bad), err.message);
    assertEquals(err.path, bad);

    err = await assertRejects(() => evalTransform(randomBytes(100, 4), { size: 8 }), DataError);
    assert(err.message.includes("<bytes>"), err.message);

    // A truncated JPEG: PIL raises "image file is truncated"; so do we.
    const jpeg = await raw(randomBytes(64 * 64 * 3, 5), 64, 64, 3).jpeg().toBuffer();
    await Deno.writeFile(`${dir}/t.jpg`, jpeg.subarray(0, jpeg.length >> 1));
    err = await assertRejects(() => evalTransform(`${dir}/t.jpg`, { size: 8 }), DataError);
    assert(err.message.includes(`${dir}/t.jpg`), err.message);

    err = await assertRejects(() => evalTransform(`${dir}/missing.png`, { size: 8 }), DataError);
    assert(err.message.includes(`${dir}/missing.png`), err.message);
  });
});

Deno.test("evalTransform rejects bad options with RangeError", async () => {
  const png = await raw(constantImage(4, 4, [1, 2, 3]), 4, 4, 3).png().toBuffer();
  await assertRejects(() => evalTransform(png, { size: 0 }), RangeError);
  await assertRejects(() => evalTransform(png, { size: 8, mean: [0.5] }), RangeError);
  assertThrows(
    () =>
      cropNormalize(
        { width: 1, height: 1, data: new Uint8Array(3) },
        2,
        IMAGENET_MEAN,
        IMAGENET_STD,
        new Float32Array(3),
      ),
    RangeError,
  );
});

// ---------------------------------------------------------------------------------------------------- loader

/** 2 classes, 7 files of mixed formats and sizes, one of them corrupt. */
async function makeDataset(): Promise<string> {
  const root = await makeTree({ "a/": null, "b/sub/": null });
  await writePng(`${root}/a/0.png`, randomBytes(20 * 16 * 3, 20), 20, 16, 3);
  await writeJpeg(`${root}/a/1.jpg`, randomBytes(16 * 24 * 3, 21), 16, 24, 3);
  await writePng(`${root}/a/2.png`, randomBytes(9 * 9, 22), 9, 9, 1);
  await Deno.writeFile(`${root}/b/3.jpg`, randomBytes(300, 23)); // corrupt
  await writePng(`${root}/b/4.png`, randomBytes(30 * 10 * 4, 24), 30, 10, 4);
  await writeJpeg(`${root}/b/5.jpeg`, randomBytes(11 * 13, 25), 11, 13, 1);
  await writePng(`${root}/b/sub/6.png`, randomBytes(5 * 7 * 3, 26), 5, 7, 3); // upscaled
  return root;
}

Deno.test("evalBatches: batches in order with targets; corrupt files go to onError", async () => {
  const root = await makeDataset();
  try {
    const { samples } = await scanImageFolder(root);
    assertEquals(samples.map((s) => s.rel), [
      "a/0.png",
      "a/1.jpg",
      "a/2.png",
      "b/3.jpg",
      "b/4.png",
      "b/5.jpeg",
      "b/sub/6.png",
    ]);
    const errors: [string, DataError][] = [];
    const batches: EvalBatch<typeof samples[number]>[] = [];
    for await (
      const batch of evalBatches(samples, {
        batchSize: 3,
        size: 8,
        concurrency: 2,
        onError: (s, e) => errors.push([s.rel, e]),
      })
    ) {
      batches.push(batch);
    }
    assertEquals(batches.map((b) => b.samples.map((s) => s.rel)), [
      ["a/0.png", "a/1.jpg", "a/2.png"],
      ["b/4.png", "b/5.jpeg"], // b/3.jpg left out
      ["b/sub/6.png"],
    ]);
    assertEquals(batches.map((b) => Array.from(b.targets)), [[0, 0, 0], [1, 1], [1]]);
    assertEquals(errors.length, 1);
    assertEquals(errors[0][0], "b/3.jpg");
    assert(errors[0][1].message.includes(`${root}/b/3.jpg`), errors[0][1].message);
    for (const batch of batches) {
      assertEquals(batch.images.length, batch.samples.length * 8 * 8 * 3);
      for (const [i, s] of batch.samples.entries()) {
        assertEquals(batch.images.subarray(i * 192, (i + 1) * 192), await evalTransform(s.path, { size: 8 }));
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("evalBatches: without onError a corrupt file throws; no empty batch; early stop", async () => {
  const root = await makeDataset();
  try {
    const { samples } = await scanImageFolder(root);
    const seen: string[] = [];
    const err = await assertRejects(async () => {
      for await (const batch of evalBatches(samples, { batchSize: 2, size: 8 })) {
        seen.push(...batch.samples.map((s) => s.rel));
      }
    }, DataError);
    assert(err.message.includes("b/3.jpg"), err.message);
    // The batch before the bad one came through; the bad one's batch ([a/2.png, b/3.jpg]) failed as a whole.
    assertEquals(seen, ["a/0.png", "a/1.jpg"]);

    // A batch whose only image is unreadable is skipped, not yielded empty.
    const bad = samples.filter((s) => s.rel === "b/3.jpg");
    const yielded: number[] = [];
    const failed: string[] = [];
    for await (
      const b of evalBatches([...bad, samples[0]], {
        batchSize: 1,
        size: 8,
        onError: (s) => failed.push(s.rel),
      })
    ) {
      yielded.push(b.samples.length);
    }
    assertEquals(yielded, [1]);
    assertEquals(failed, ["b/3.jpg"]);

    for await (const _ of evalBatches([], { batchSize: 4, size: 8 })) throw new Error("no batch expected");

    // Stopping early leaves nothing running that fails later.
    for await (const b of evalBatches(samples, { batchSize: 1, size: 8, concurrency: 1 })) {
      assertEquals(b.samples[0].rel, "a/0.png");
      break;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
