/**
 * Random draws for the augmentations, all taken from the project's seeded {@link Rng} so that every transform
 * is reproducible from a seed (and its state can be checkpointed).
 *
 * The names follow Python's `random` module, whose calls timm makes: `uniform(a, b)`, `randint(a, b)`
 * (both ends included), `gauss(mu, sigma)`. The streams are of course not Python's (mulberry32, not MT19937):
 * what is reproduced is the distribution and the order of the decisions, not the bytes of a PyTorch run.
 */
import { Rng } from "../../base/rng.ts";

/** Uniform in [lo, hi) (Python's `random.uniform`). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.next();
}

/** Integer uniform in [lo, hi], both ends included (Python's `random.randint`). */
export function randint(rng: Rng, lo: number, hi: number): number {
  if (hi < lo) throw new RangeError(`randint: empty range [${lo}, ${hi}]`);
  return lo + rng.int(hi - lo + 1);
}

/** A standard normal draw (Box–Muller; the second value is not cached, so every draw costs two uniforms). */
export function standardNormal(rng: Rng): number {
  const u1 = 1 - rng.next(); // (0, 1]: log stays finite
  const u2 = rng.next();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Normal with mean `mu` and standard deviation `sigma` (Python's `random.gauss`). */
export function gauss(rng: Rng, mu: number, sigma: number): number {
  return mu + sigma * standardNormal(rng);
}

/** Fills `out[start, end)` with standard normal draws, two per Box–Muller pair (torch's `normal_()`). */
export function fillStandardNormal(rng: Rng, out: Float32Array, start = 0, end = out.length): void {
  let i = start;
  for (; i + 1 < end; i += 2) {
    const u1 = 1 - rng.next();
    const u2 = rng.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  if (i < end) out[i] = standardNormal(rng);
}

/** In-place Fisher–Yates shuffle. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(rng: Rng, a: T): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A random permutation of [0, n). */
export function randperm(rng: Rng, n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return shuffleInPlace(rng, a);
}

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 32-bit seed derived from a tuple of non-negative integers (each below 2^53), e.g. (stream, seed, epoch,
 * position). Distinct tuples give unrelated seeds, so per-sample and per-batch generators can be created on
 * any thread, in any order, and give the same draws — the basis of the loader's determinism.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (!Number.isInteger(p) || p < 0) {
      throw new RangeError(`deriveSeed: parts must be integers >= 0, got ${p}`);
    }
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h ^ lo) >>> 0);
    h = fmix32((Math.imul(h, 0x01000193) ^ hi ^ 0x5bd1e995) >>> 0);
  }
  return h;
}

/** A generator seeded by {@link deriveSeed}`(...parts)`. */
export function derivedRng(...parts: number[]): Rng {
  return new Rng(deriveSeed(...parts));
}
