/**
 * A frozen teacher's logits kept on disk, for runs that show the same teacher the same batches.
 *
 * A training batch depends only on the run's seed, the epoch and the position in it (lib/data/train_loader.ts),
 * so students of different distillation modes trained with one seed and one teacher — the hard, soft and
 * token arms of a comparison — feed the teacher identical batches. The teacher's forward pass is then computed
 * once and read back by the other arms, which makes a convnet teacher's share of a student's step (about 30%
 * for RegNetY-200MF behind deit_micro on one core: bench/NOTES.md) nearly free for all arms but the first.
 *
 * Exactness: an entry is found by the SHA-256 of the batch's own bytes and shape, inside a folder named by the
 * teacher's identity — the model, the SHA-256 of its checkpoint and the engine that computes it (backend,
 * matmul kernel, fast or reference ops), since another engine rounds differently. A hit returns the very
 * floats the teacher gave, so a run with the cache trains exactly as one without it (tests/teacher_cache_test.ts).
 * Entries are written to a temporary name and renamed, so a reader sees a whole entry or none; one that cannot
 * be read or has the wrong length is recomputed and rewritten, and a cache that cannot be written (a full disk)
 * says so once and stores nothing more — the run goes on. Nothing checks an entry's floats: the folder is a
 * local cache, not input from elsewhere — delete it (`.cache/teacher-logits/`) to start over.
 */
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs";
import type { Teacher } from "./losses.ts";

/** What names a teacher's cache folder: a different value of any part is a different cache. */
export interface TeacherIdentity {
  /** The registered model. */
  name: string;
  /** The checkpoint file the teacher's weights come from. */
  checkpoint: string;
  /** The engine that computes it, e.g. `{ backend: "wasm", matmul: "blas", ops: "fast" }`. */
  engine: Record<string, string>;
}

/** `<root>/<model>-<16 hex digits>`: the folder of one teacher, from its identity (reads the checkpoint once). */
export async function teacherCacheDir(root: string, id: TeacherIdentity): Promise<string> {
  const h = createHash("sha256");
  h.update(JSON.stringify({ name: id.name, engine: id.engine }));
  h.update(await Deno.readFile(id.checkpoint));
  return `${root}/${id.name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${h.digest("hex").slice(0, 16)}`;
}

export class TeacherLogitCache {
  /** Batches answered from the cache, and computed (then stored), since the cache was opened. */
  hits = 0;
  misses = 0;
  #unwritable = false;

  constructor(readonly dir: string, readonly numClasses: number) {
    Deno.mkdirSync(dir, { recursive: true });
  }

  /**
   * The teacher for one batch `x`, whose host copy is `xs`: it answers `predict(x)` once, with the stored logits
   * when an earlier run saw this batch, else with the teacher's own (stored before they are handed over).
   * Reads are asynchronous, so this works on engines without synchronous reads (WebGPU under Deno).
   */
  async forBatch(teacher: Teacher, x: tf.Tensor4D, xs: Float32Array): Promise<Teacher & { cached: boolean }> {
    const rows = x.shape[0];
    const path = this.#path(x.shape, xs);
    const stored = this.#read(path, rows);
    let logits: tf.Tensor2D;
    if (stored) {
      this.hits++;
      logits = tf.tensor2d(stored, [rows, this.numClasses]);
    } else {
      this.misses++;
      logits = teacher.predict(x);
      this.#write(path, (await logits.data()) as Float32Array);
    }
    let given = false;
    return {
      cached: stored !== undefined,
      predict(input: tf.Tensor4D): tf.Tensor2D {
        if (given || input !== x) throw new Error("a batch's cached teacher answers its own batch, once");
        given = true;
        return logits;
      },
    };
  }

  #path(shape: number[], xs: Float32Array): string {
    const h = createHash("sha256");
    h.update(shape.join("x") + ":");
    h.update(new Uint8Array(xs.buffer, xs.byteOffset, xs.byteLength));
    const key = h.digest("hex");
    return `${this.dir}/${key.slice(0, 2)}/${key.slice(2)}.f32`;
  }

  #read(path: string, rows: number): Float32Array | undefined {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch {
      return undefined; // not stored yet, or unreadable: the teacher computes it
    }
    if (bytes.byteLength !== rows * this.numClasses * 4) return undefined;
    if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
    return new Float32Array(bytes.buffer, bytes.byteOffset, rows * this.numClasses);
  }

  /** Stores an entry; a failure (a full disk, a read-only folder) stops storing, with one line, not the run. */
  #write(path: string, logits: Float32Array): void {
    if (this.#unwritable) return;
    const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      Deno.writeFileSync(tmp, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
      Deno.renameSync(tmp, path);
    } catch (e) {
      this.#unwritable = true;
      try {
        Deno.removeSync(tmp);
      } catch { /* never written */ }
      console.error(
        `teacher cache: cannot write ${path} (${(e as Error).message}); no more entries are stored`,
      );
    }
  }
}
