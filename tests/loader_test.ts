/**
 * Tests for the training loader (lib/data/train_loader.ts): batches are the same bytes with 0, 1 or 2
 * augmentation Workers, the seed matters, a saved state resumes with the same batches, Mixup targets come along.
 * Small synthetic in-memory images keep it quick.
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { Rng } from "../lib/base/rng.ts";
import type { Dataset, Sample } from "../lib/data/dataset.ts";
import { RepeatedAugSampler, ShuffleSampler } from "../lib/data/sampler.ts";
import { type TrainBatch, TrainLoader, type TrainLoaderOptions } from "../lib/data/train_loader.ts";

/** `n` random RGB images of varied sizes, label = i mod classes. */
class SyntheticDataset implements Dataset {
  readonly name = "synthetic";
  readonly classes: readonly string[];
  readonly #images: Uint8Array[] = [];
  readonly #sizes: [number, number][] = [];

  constructor(readonly length: number, numClasses: number) {
    this.classes = Array.from({ length: numClasses }, (_, i) => `c${i}`);
    const rng = new Rng(123);
    for (let i = 0; i < length; i++) {
      const w = 40 + (i % 5) * 4, h = 30 + (i % 3) * 5;
      const d = new Uint8Array(w * h * 3);
      for (let k = 0; k < d.length; k++) d[k] = rng.int(256);
      this.#images.push(d);
      this.#sizes.push([w, h]);
    }
  }

  get(i: number): Promise<Sample> {
    const [width, height] = this.#sizes[i];
    // a fresh copy each time, as a decoder would return
    return Promise.resolve({
      image: { data: this.#images[i].slice(), width, height, channels: 3 },
      label: i % this.classes.length,
    });
  }
}

const dataset = new SyntheticDataset(24, 4);

function options(over: Partial<TrainLoaderOptions> = {}): TrainLoaderOptions {
  return {
    dataset,
    transform: { size: 24, smallImage: false },
    sampler: new RepeatedAugSampler({ size: dataset.length, seed: 5, roundTo: 8 }),
    batchSize: 4,
    seed: 9,
    workers: 0,
    ...over,
  };
}

async function collect(loader: TrainLoader, maxBatches = Infinity): Promise<TrainBatch[]> {
  const out: TrainBatch[] = [];
  for await (const b of loader.epoch()) {
    out.push(b);
    if (out.length >= maxBatches) break;
  }
  return out;
}

function bytes(b: TrainBatch): Uint8Array {
  return new Uint8Array(b.x.buffer, b.x.byteOffset, b.x.byteLength);
}

Deno.test("loader: shapes, labels, epoch length, state advances to the next epoch", async () => {
  await using loader = new TrainLoader(options());
  assertEquals(loader.batchesPerEpoch, 6); // 24 rounded down to a multiple of 8 = 24, / 4
  const batches = await collect(loader);
  assertEquals(batches.length, 6);
  for (const [k, b] of batches.entries()) {
    assertEquals(b.x.length, 4 * 24 * 24 * 3);
    assertEquals(b.step, k);
    assertEquals(b.epoch, 0);
    assertEquals(Array.from(b.labels), Array.from(b.indices, (i) => i % 4));
    assert(b.x.every((v) => Number.isFinite(v)));
  }
  // repeated augmentation in one process: each image's 3 copies are consecutive, augmented differently
  const first = batches[0];
  assertEquals(first.indices[0], first.indices[1]);
  const px = 24 * 24 * 3;
  assertNotEquals(first.x.slice(0, px), first.x.slice(px, 2 * px));
  assertEquals(loader.state.epoch, 1);
  assertEquals(loader.state.step, 0);
});

Deno.test("loader: same seed → identical batches with 0, 1 and 2 workers; other seed differs", async () => {
  const runs: TrainBatch[][] = [];
  for (const workers of [0, 1, 2]) {
    await using loader = new TrainLoader(options({ workers, prefetch: 2 }));
    runs.push(await collect(loader, 3));
  }
  for (const r of runs.slice(1)) {
    assertEquals(r.length, runs[0].length);
    for (let k = 0; k < r.length; k++) {
      assertEquals(bytes(r[k]), bytes(runs[0][k]), `batch ${k}`);
      assertEquals(r[k].labels, runs[0][k].labels);
    }
  }
  await using other = new TrainLoader(options({ seed: 10 }));
  const o = await collect(other, 1);
  assertNotEquals(bytes(o[0]), bytes(runs[0][0]));
});

Deno.test("loader: a restored state continues with the same batches (across an epoch boundary)", async () => {
  // reference: 1.5 epochs straight through
  await using ref = new TrainLoader(options({ mixup: { numClasses: 4 } }));
  const epoch0 = await collect(ref);
  const epoch1 = await collect(ref);
  assertEquals(epoch0.length + epoch1.length, 12);
  // interrupted run: stops after 2 batches of epoch 1, saves, a new loader resumes
  await using a = new TrainLoader(options({ mixup: { numClasses: 4 } }));
  await collect(a);
  const part = await collect(a, 2);
  const saved = JSON.parse(JSON.stringify(a.state));
  assertEquals([saved.epoch, saved.step], [1, 2]);
  await using b = new TrainLoader(options({ mixup: { numClasses: 4 }, workers: 1 }));
  b.state = saved;
  const rest = await collect(b);
  const resumed = [...part, ...rest];
  assertEquals(resumed.length, epoch1.length);
  for (let k = 0; k < resumed.length; k++) {
    assertEquals(bytes(resumed[k]), bytes(epoch1[k]), `batch ${k}`);
    assertEquals(resumed[k].target, epoch1[k].target);
    assertEquals(resumed[k].lam, epoch1[k].lam);
  }
  assertNotEquals(bytes(epoch0[0]), bytes(epoch1[0]));
  assertThrows(() => (b.state = { epoch: 0, step: 0, seed: 1 }), RangeError);
});

Deno.test("loader: Mixup/CutMix targets are smoothed, mixed and sum to 1", async () => {
  await using loader = new TrainLoader(
    options({ mixup: { numClasses: 4 }, sampler: new ShuffleSampler({ size: 24, seed: 1 }), batchSize: 6 }),
  );
  const batches = await collect(loader);
  assertEquals(batches.length, 4);
  const modes = new Set<string>();
  for (const b of batches) {
    assertEquals(b.target!.length, 6 * 4);
    assert(b.lam! > 0 && b.lam! <= 1);
    modes.add(b.mixMode!);
    for (let i = 0; i < 6; i++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += b.target![i * 4 + k];
      assertAlmostEquals(s, 1, 1e-5);
      assert(b.target![i * 4 + b.labels[i]] >= Math.min(b.lam!, 1 - b.lam!) * 0.9 + 0.025 - 1e-6);
    }
  }
  assert(modes.size >= 1);
  assertThrows(() => new TrainLoader(options({ mixup: { numClasses: 4 }, batchSize: 5 })), RangeError);
});

Deno.test("loader: a transform error reaches the consumer", async () => {
  const bad: Dataset = {
    name: "bad",
    classes: ["a"],
    length: 8,
    get: (i) =>
      i === 3
        ? Promise.reject(new Error("broken image 3"))
        : dataset.get(i).then((s) => ({ ...s, label: 0 })),
  };
  await using loader = new TrainLoader(
    options({ dataset: bad, sampler: new ShuffleSampler({ size: 8, shuffle: false }) }),
  );
  await assertRejects(() => collect(loader), Error, "broken image 3");
});
