/**
 * A small seeded random number generator whose whole state is one number, so runs can save and restore it
 * (checkpoints) and every stochastic op (drop path, augmentation) is reproducible under a seed.
 *
 * Algorithm: mulberry32 (public domain), 32-bit state, period 2^32 — ample for per-step seeds.
 */
export class Rng {
  #state: number;

  constructor(seed = 0) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer seed for a tf random op (tf seeds are numbers; keep them within 2^31). */
  nextSeed(): number {
    return Math.floor(this.next() * 2147483647);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  get state(): number {
    return this.#state;
  }

  set state(s: number) {
    this.#state = s >>> 0;
  }
}
