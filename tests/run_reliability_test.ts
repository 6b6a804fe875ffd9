/**
 * A run folder survives whatever stops its trainer (lib/train/run_state.ts): a SIGKILL between an epoch's
 * checkpoint and its log line, a full disk, a second trainer on the same folder, a resume with no checkpoint, a
 * damaged checkpoint-last. Kills land where chosen through the trainer's test hook (`DEIT_TEST_FAULT`); a full
 * disk is a small tmpfs where this machine lets us mount one (root), an injected ENOSPC otherwise.
 * Every resumed run must log what an uninterrupted one logs (times aside).
 */
import { assert, assertEquals, assertMatch, assertRejects, assertStringIncludes } from "@std/assert";
import { FASHION_MNIST_DIR } from "../lib/data/formats/mod.ts";
import { readSafetensors, serializeSafetensors, writeFileAtomic } from "../lib/io/safetensors.ts";
import {
  EPOCH_LOG_KEY,
  parseTrainingCheckpoint,
  type TrainState,
  writeTrainingCheckpoint,
} from "../lib/io/train_state.ts";
import { isNoSpace, LOCK_FILE, removeStaleTemps, RunLock } from "../lib/train/run_state.ts";
import { TrainingError } from "../lib/train/setup.ts";
import { readRunLog, tinyRunConfig, trainProcess } from "./helpers.ts";

const haveFmnist = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);
const dec = new TextDecoder();

/** 3 epochs of 3 steps, evaluated after each; a weights snapshot after each. */
const tiny = tinyRunConfig({ snapshot_every: 1 });

const train = (args: string[], fault = "") => trainProcess(args, { DEIT_TEST_FAULT: fault });

/** Runs the trainer to its end; its exit code (137 when killed), signal and stderr. */
async function run(args: string[], fault = "") {
  const r = await train(args, fault).output();
  return { code: r.code, signal: r.signal, err: dec.decode(r.stderr) };
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
const readLog = readRunLog;
const temporaries = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) => /\.tmp-\d+$/.test(n));

async function checkpointOf(path: string) {
  const f = await readSafetensors(path);
  return parseTrainingCheckpoint({ stateDict: f.tensors, metadata: f.metadata });
}

/** A temporary folder with the tiny config; `args(dir)` the trainer's arguments for run folder `dir/run`. */
async function setup() {
  const root = await Deno.makeTempDir({ prefix: "reliability-" });
  await Deno.writeTextFile(`${root}/tiny.json`, JSON.stringify(tiny));
  const dir = `${root}/run`;
  const args = (...more: string[]) => ["--config", `${root}/tiny.json`, "--out", dir, ...more];
  return { root, dir, args };
}

/** The log of an uninterrupted run (started with --resume on a folder that does not exist: a sweep's retry). */
let reference: Promise<Record<string, unknown>[]> | undefined;
function referenceLog() {
  reference ??= (async () => {
    const { root, dir, args } = await setup();
    const r = await run(args("--resume"));
    assertEquals(r.code, 0, r.err);
    const log = await readLog(dir);
    assert(!(await exists(`${dir}/${LOCK_FILE}`)), "the lock file is removed at the end");
    await Deno.remove(root, { recursive: true });
    return log;
  })();
  return reference;
}

/** `dir`'s log equals the uninterrupted run's, times aside; checkpoint-best backs the best accuracy. */
async function assertComplete(dir: string) {
  const want = await referenceLog();
  const got = await readLog(dir);
  const untimed = (l: Record<string, unknown>) => ({ ...l, seconds: 0, images_per_s: 0 });
  assertEquals(got.map(untimed), want.map(untimed));
  const best = await checkpointOf(`${dir}/checkpoint-best.safetensors`);
  assertEquals(best.state!.best_acc1, got[got.length - 1].best_acc1);
  for (let e = 1; e <= 3; e++) {
    assert(await exists(`${dir}/checkpoint-epoch-${e}.safetensors`), `snapshot ${e}`);
  }
  assertEquals(await temporaries(dir), []);
}

const fmnist = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !haveFmnist, fn, sanitizeResources: false, sanitizeOps: false });

fmnist("a SIGKILL between an epoch's checkpoint and its log line loses no epoch", async () => {
  const { root, dir, args } = await setup();
  // Killed right after epoch 0's checkpoint-last: nothing logged, no checkpoint-best, no snapshot yet.
  let r = await run(args(), "kill:committed:0");
  assertEquals(r.signal, "SIGKILL", r.err);
  assertEquals(await readLog(dir), []);
  assert(!(await exists(`${dir}/checkpoint-best.safetensors`)));
  const ck = await checkpointOf(`${dir}/checkpoint-last.safetensors`);
  assertEquals(JSON.parse(ck.epochLog!).epoch, 0);
  assert(await exists(`${dir}/${LOCK_FILE}`), "a killed trainer's lock file stays (unlocked)");
  // Temporary files of dead processes go at the next start; a live process's stay.
  const dead = `${dir}/checkpoint-last.safetensors.tmp-99999999`;
  const live = `${dir}/checkpoint-best.safetensors.tmp-${Deno.pid}`;
  await Deno.writeTextFile(dead, "x");
  await Deno.writeTextFile(live, "x");

  // Resumed, and killed after epoch 1's checkpoint, best and snapshot, before its log line.
  r = await run(args("--resume"), "kill:logging:1");
  assertEquals(r.signal, "SIGKILL", r.err);
  assertStringIncludes(r.err, "removed 1 temporary file(s)");
  assertStringIncludes(r.err, "epoch 0's line restored from its checkpoint");
  assertStringIncludes(r.err, "checkpoint-best was missing: copied again");
  assertStringIncludes(r.err, "checkpoint-epoch-1 written from");
  assertEquals((await readLog(dir)).map((l) => l.epoch), [0]);
  assert(!(await exists(dead)) && (await exists(live)));
  await Deno.remove(live);

  r = await run(args("--resume"));
  assertEquals(r.code, 0, r.err);
  assertStringIncludes(r.err, "epoch 1's line restored from its checkpoint");
  await assertComplete(dir);
  await Deno.remove(root, { recursive: true });
});

/** Mounts a tmpfs of `size` at `dir` (root only); false where this machine does not let us. */
async function mountTmpfs(dir: string, size: string, remount = false): Promise<boolean> {
  try {
    const o = remount ? `remount,size=${size}` : `size=${size}`;
    const r = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", o, "tmpfs", dir],
      stderr: "null",
    })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

fmnist(
  "a full disk is one clear line that leaves the last good checkpoint intact; --resume restores",
  async () => {
    const { root, dir, args } = await setup();
    await Deno.mkdir(dir);
    // 12.5 MB holds one checkpoint (8.2 MB) but not its copy to checkpoint-best: ENOSPC right after epoch 0's
    // commit, where the trainer once printed a stack trace and left `checkpoint-best.safetensors.tmp-PID`.
    const tmpfs = await mountTmpfs(dir, "12800k");
    try {
      const r = await run(args(), tmpfs ? "" : "enospc:write:checkpoint-best.safetensors");
      assertEquals(r.code, 2, r.err);
      const errLine = r.err.split("\n").findLast((l) => l.startsWith("error: "));
      assertEquals(
        errLine,
        `error: no space left on device writing ${dir}/checkpoint-best.safetensors; the last good checkpoint, ` +
          `${dir}/checkpoint-last.safetensors (after epoch 0), is intact; free space, then --resume continues`,
      );
      assert(!r.err.includes("    at "), "stack trace printed");
      assertEquals(await temporaries(dir), []);
      assertEquals((await checkpointOf(`${dir}/checkpoint-last.safetensors`)).state!.loader.epoch, 1);
      if (tmpfs) assert(await mountTmpfs(dir, "64m", true), "remount");
      const again = await run(args("--resume"));
      assertEquals(again.code, 0, again.err);
      assertStringIncludes(again.err, "checkpoint-best was missing: copied again");
      await assertComplete(dir);
    } finally {
      if (tmpfs) await new Deno.Command("umount", { args: [dir] }).output();
    }
    // A failed log append (injected) is cut back and restored the same way.
    await Deno.remove(dir, { recursive: true });
    const r = await run(args(), "enospc:append:log.jsonl");
    assertEquals(r.code, 2, r.err);
    assertStringIncludes(r.err, `error: no space left on device writing ${dir}/log.jsonl;`);
    assertEquals(await readLog(dir), []);
    const again = await run(args("--resume"));
    assertEquals(again.code, 0, again.err);
    await assertComplete(dir);
    await Deno.remove(root, { recursive: true });
  },
);

fmnist(
  "a second trainer on a run folder is refused, naming the first; a dead trainer's lock does not block",
  async () => {
    const { root, dir, args } = await setup();
    const first = train(args()).spawn();
    const lock = `${dir}/${LOCK_FILE}`;
    let holder: { pid?: number } = {};
    for (let i = 0; i < 1200 && holder.pid === undefined; i++) {
      holder = JSON.parse(await Deno.readTextFile(lock).catch(() => "{}") || "{}");
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(holder.pid, first.pid);
    const second = await run(args("--resume"));
    assertEquals(second.code, 2, second.err);
    assertMatch(second.err, new RegExp(`is in use by another trainer \\(pid ${first.pid} on .+, started `));
    // The first one goes on; killed once it has a checkpoint, its lock file stays but blocks nobody.
    for (let i = 0; i < 1200 && !(await exists(`${dir}/checkpoint-last.safetensors`)); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    first.kill("SIGKILL");
    await first.status;
    await first.stdout.cancel();
    await first.stderr.cancel();
    assert(await exists(lock));
    const third = await run(args("--resume"));
    assertEquals(third.code, 0, third.err);
    assertEquals((await readLog(dir)).map((l) => l.epoch), [0, 1, 2]);
    assert(!(await exists(lock)));
    await Deno.remove(root, { recursive: true });
  },
);

fmnist(
  "--resume with epochs logged but no checkpoint-last is refused and keeps the log; --restart starts over",
  async () => {
    const { root, dir, args } = await setup();
    assertEquals((await run(args())).code, 0);
    const log = await Deno.readTextFile(`${dir}/log.jsonl`);
    await Deno.remove(`${dir}/checkpoint-last.safetensors`);
    const r = await run(args("--resume"));
    assertEquals(r.code, 2, r.err);
    assertStringIncludes(r.err, `${dir} has 3 epoch(s) in log.jsonl but no checkpoint-last.safetensors`);
    assertStringIncludes(r.err, `--resume-from ${dir}/checkpoint-best.safetensors`);
    assertStringIncludes(r.err, `--out ${dir} --restart`);
    assertEquals(await Deno.readTextFile(`${dir}/log.jsonl`), log);
    // Without --resume the folder is refused too; --restart removes the run and trains it again.
    assertStringIncludes((await run(args())).err, "--restart to start it over");
    const again = await run(args("--restart"));
    assertEquals(again.code, 0, again.err);
    assertStringIncludes(again.err, "--restart: removed checkpoint-best.safetensors");
    await assertComplete(dir);
    await Deno.remove(root, { recursive: true });
  },
);

fmnist(
  "a damaged checkpoint-last names its fallbacks; --resume-from checkpoint-best redoes the epochs after it",
  async () => {
    const { root, dir, args } = await setup();
    // Killed before epoch 2's log line: checkpoint-last is after epoch 2, checkpoint-best after epoch 1 (epoch 2
    // does not beat it).
    const r0 = await run(args(), "kill:logging:2");
    assertEquals(r0.signal, "SIGKILL", r0.err);
    const best = `${dir}/checkpoint-best.safetensors`;
    assertEquals((await checkpointOf(best)).state!.loader.epoch, 2);

    // A checkpoint from before the epoch_log key (the trainer's older versions) resumes; the line it cannot
    // restore is reported. (A copy of the folder; the run is finished, so nothing is trained.)
    const old = `${root}/old`;
    await Deno.mkdir(old);
    for (const f of ["log.jsonl", "checkpoint-last.safetensors", "config.json"]) {
      await Deno.copyFile(`${dir}/${f}`, `${old}/${f}`);
    }
    const f = await readSafetensors(`${old}/checkpoint-last.safetensors`);
    const { [EPOCH_LOG_KEY]: _, ...meta } = f.metadata;
    await Deno.writeFile(`${old}/checkpoint-last.safetensors`, serializeSafetensors(f.tensors, meta));
    const rOld = await run(["--config", `${root}/tiny.json`, "--out", old, "--resume"]);
    assertEquals(rOld.code, 0, rOld.err);
    assertStringIncludes(rOld.err, "warning: log.jsonl lacks the line(s) of epoch(s) 2");

    // Truncated checkpoint-last: one clean line with the commands that continue.
    const bytes = await Deno.readFile(`${dir}/checkpoint-last.safetensors`);
    await Deno.writeFile(`${dir}/checkpoint-last.safetensors`, bytes.subarray(0, bytes.length >> 1));
    const r = await run(args("--resume"));
    assertEquals(r.code, 2, r.err);
    assert(!r.err.includes("    at "), "stack trace printed");
    assertStringIncludes(r.err, "error: cannot resume: ");
    assertStringIncludes(r.err, `continue from checkpoint-best (after epoch 1, acc@1 `);
    assertStringIncludes(
      r.err,
      `deno task train --config ${root}/tiny.json --out ${dir} --resume-from ${best}`,
    );
    assertStringIncludes(r.err, "checkpoint-epoch-3 holds weights only");
    assertStringIncludes(r.err, `--out ${dir} --restart`);
    const again = await run(args("--resume", "--resume-from", best));
    assertEquals(again.code, 0, again.err);
    assertStringIncludes(again.err, `resuming from ${best} (after epoch 1)`);
    await assertComplete(dir);
    await Deno.remove(root, { recursive: true });
  },
);

Deno.test("RunLock: one holder at a time, named in the error; released, it is free again", async () => {
  const dir = await Deno.makeTempDir();
  const a = await RunLock.acquire(dir);
  const info = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
  assertEquals(info.pid, Deno.pid);
  await assertRejects(
    () => RunLock.acquire(dir),
    TrainingError,
    `in use by another trainer (pid ${Deno.pid} on `,
  );
  a.release();
  assert(!(await exists(`${dir}/${LOCK_FILE}`)));
  const b = await RunLock.acquire(dir);
  b.release();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stale temporaries: only dead processes' *.tmp-PID files are removed", async () => {
  const dir = await Deno.makeTempDir();
  const names = ["a.safetensors.tmp-99999999", `b.safetensors.tmp-${Deno.pid}`, "c.tmp-x", "log.jsonl"];
  for (const n of names) await Deno.writeTextFile(`${dir}/${n}`, "");
  assertEquals(await removeStaleTemps(dir), 1);
  assertEquals((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), names.slice(1).sort());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeFileAtomic leaves no temporary when it fails; ENOSPC is recognised", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/target`);
  await Deno.writeTextFile(`${dir}/target/x`, "");
  await assertRejects(() => writeFileAtomic(`${dir}/target`, new Uint8Array(4))); // rename onto a folder
  assertEquals((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["target"]);
  assert(isNoSpace(Object.assign(new Error("x"), { code: "ENOSPC" })));
  assert(
    isNoSpace(new Error("cannot write f", { cause: new Error("No space left on device (os error 28)") })),
  );
  assert(!isNoSpace(new Error("permission denied")));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a training checkpoint carries its epoch's log line (epoch_log); older ones read as null", async () => {
  const dir = await Deno.makeTempDir();
  const state: TrainState = {
    format: 1,
    loader: { epoch: 1, step: 0 },
    global_step: 3,
    best_acc1: 10,
    rng: [1],
    optim_step: 3,
    model: "deit_mini_patch4_28",
  };
  const tensors = { weights: new Map(), optimSlots: {}, ema: {} };
  const line = JSON.stringify({ epoch: 0, test_acc1: 10 });
  await writeTrainingCheckpoint(`${dir}/a.safetensors`, tensors, state, 10, line);
  await writeTrainingCheckpoint(`${dir}/b.safetensors`, tensors, state, 10);
  assertEquals((await checkpointOf(`${dir}/a.safetensors`)).epochLog, line);
  assertEquals((await checkpointOf(`${dir}/b.safetensors`)).epochLog, null);
  await Deno.remove(dir, { recursive: true });
});
