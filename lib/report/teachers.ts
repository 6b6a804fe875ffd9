/**
 * Accuracy-matched teachers (claim (d) of results/claims.md: a convnet teacher against a transformer teacher *of
 * the same accuracy*, as the paper's Table 2 compares them). Two teacher runs train with one recipe and keep a
 * snapshot every few epochs (`snapshot_every`, evaluated at those epochs); the stronger one is represented by
 * its snapshot whose test accuracy is nearest the weaker one's final accuracy, the weaker by its final weights.
 * Both are written as `checkpoint-matched.safetensors` in their run folders, which the students name.
 */
import { repoPath } from "../base/paths.ts";
import { readRun } from "./runs.ts";
export interface TeacherLog {
  epoch: number;
  /** NaN or null where the epoch was not evaluated. */
  test_acc1: number | null;
  finished?: boolean;
}

export interface MatchChoice {
  /** Run folder and snapshot epoch (epochs done) of each teacher, and its test top-1. */
  teachers: { dir: string; epoch: number; acc1: number; final_acc1: number }[];
  /** |acc1 difference| of the chosen pair, points. */
  gap: number;
}

/** Teachers that cannot be matched (not there, not finished, no snapshot): a one-line error for the scripts. */
export class TeacherMatchError extends Error {
  override name = "TeacherMatchError";
}

/** Test top-1 after `epochs` epochs (the log line of epoch index epochs − 1), when it was evaluated. */
function accAfter(log: TeacherLog[], epochs: number): number | null {
  const l = log.find((x) => x.epoch === epochs - 1);
  return l && Number.isFinite(l.test_acc1 ?? NaN) ? l.test_acc1 : null;
}

/**
 * The matched pair from two finished teachers' logs and snapshot epochs (pure). The stronger teacher's snapshot
 * nearest the weaker's final accuracy (ties: the later snapshot); the weaker's final epoch.
 */
export function chooseMatch(
  a: { dir: string; log: TeacherLog[]; snapshots: number[] },
  b: { dir: string; log: TeacherLog[]; snapshots: number[] },
): MatchChoice {
  const final = (t: typeof a) => {
    const last = t.log[t.log.length - 1];
    if (!last?.finished || !Number.isFinite(last.test_acc1 ?? NaN)) {
      throw new TeacherMatchError(`${t.dir}: not finished`);
    }
    return { epoch: last.epoch + 1, acc1: last.test_acc1! };
  };
  const fa = final(a), fb = final(b);
  const [strong, weak, fs, fw] = fa.acc1 >= fb.acc1 ? [a, b, fa, fb] : [b, a, fb, fa];
  if (!weak.snapshots.includes(fw.epoch)) {
    throw new TeacherMatchError(`${weak.dir}: no snapshot of the final epoch ${fw.epoch}`);
  }
  let best: { epoch: number; acc1: number } | undefined;
  for (const e of [...strong.snapshots].sort((x, y) => x - y)) {
    const acc = accAfter(strong.log, e);
    if (acc === null) continue;
    if (!best || Math.abs(acc - fw.acc1) <= Math.abs(best.acc1 - fw.acc1)) best = { epoch: e, acc1: acc };
  }
  if (!best) throw new TeacherMatchError(`${strong.dir}: no evaluated snapshot`);
  const teachers = [
    { dir: strong.dir, epoch: best.epoch, acc1: best.acc1, final_acc1: fs.acc1 },
    { dir: weak.dir, epoch: fw.epoch, acc1: fw.acc1, final_acc1: fw.acc1 },
  ];
  return { teachers, gap: Math.abs(best.acc1 - fw.acc1) };
}

/** A teacher run's log (through the report's run reader) and the epochs it kept snapshots of. */
async function readTeacher(dir: string) {
  const run = await readRun(dir);
  if (!run) throw new TeacherMatchError(`${dir}: no run there`);
  const snapshots: number[] = [];
  for await (const e of Deno.readDir(repoPath(dir))) {
    const m = e.name.match(/^checkpoint-epoch-(\d+)\.safetensors$/);
    if (m) snapshots.push(Number(m[1]));
  }
  return { dir, log: run.logs, snapshots };
}

/**
 * Match the teachers when both are finished and not matched since (a no-op otherwise); true when matched.
 */
export async function matchTeachersWhenDone(dirA: string, dirB: string): Promise<boolean> {
  for (const d of [dirA, dirB]) if (!(await readRun(d))?.done) return false;
  await matchTeachers(dirA, dirB);
  return true;
}

/** Choose the pair and write each teacher's `checkpoint-matched.safetensors` (+ `teacher-match.json` beside). */
export async function matchTeachers(dirA: string, dirB: string): Promise<MatchChoice> {
  const choice = chooseMatch(await readTeacher(dirA), await readTeacher(dirB));
  for (const t of choice.teachers) {
    const dst = `${repoPath(t.dir)}/checkpoint-matched.safetensors`;
    await Deno.copyFile(
      `${repoPath(t.dir)}/checkpoint-epoch-${t.epoch}.safetensors`,
      `${dst}.tmp-${Deno.pid}`,
    );
    await Deno.rename(`${dst}.tmp-${Deno.pid}`, dst);
    await Deno.writeTextFile(`${repoPath(t.dir)}/teacher-match.json`, JSON.stringify(choice, null, 2) + "\n");
  }
  return choice;
}
