/**
 * One run's process, from start to outcome: the run's config is checked against the one it started with and
 * written, its command started in the repository root with its output appended to `<dir>/train.log`, and at
 * its exit the run is done (compacted), interrupted (the sweep was stopped: resumable) or failed (recorded in
 * `<dir>/sweep-status.json` with the tail of its output).
 */
import { fmtSeconds } from "../base/progress.ts";
import { REPO_ROOT, repoPath } from "../base/paths.ts";
import { type CommandBuilder, shellLine } from "./command.ts";
import { compactRun } from "./compact.ts";
import { configChanges, type RunSpec, writeRunConfig } from "./grid.ts";
import { finish, type Say, type SweepEntry } from "./queue.ts";
import type { Slot } from "./slots.ts";
import { clearFailure, recordFailure, runStatus } from "./status.ts";
import { epochCell, pct } from "./view.ts";

export interface JobOptions {
  command: CommandBuilder;
  /** Lines of output kept for a failed run. */
  tailLines: number;
  /** The sweep is being stopped: a run that exits unfinished now is interrupted, not failed. */
  stopping: () => boolean;
  say: Say;
}

const enc = new TextEncoder();

/**
 * Start the run of `e` on `slot`. Returns once its process is started (or could not be); `e.exit` settles when
 * it has ended and its outcome is recorded. A run that cannot start (changed config, no such command,
 * unwritable folder) fails alone.
 */
export async function startJob(e: SweepEntry, slot: Slot, o: JobOptions): Promise<void> {
  e.state = "running";
  e.slot = slot;
  const resume = e.status.state !== "pending";
  Object.assign(e.result, { slot: slot.name, resumed: resume, started: Date.now() });
  o.say(e, `started on ${slot.name}${resume ? ` (resuming after epoch ${e.status.epoch + 1})` : ""}`);
  let proc: RunProcess;
  try {
    proc = await spawnRun(e.run, slot, resume, o.command);
  } catch (err) {
    e.exit = cannotStart(e, err as Error, o);
    return;
  }
  e.child = proc.child;
  e.exit = proc.ended.then(async (code) => {
    try {
      await settle(e, code, proc, o);
    } catch (err) {
      finish(e, "failed", { code, tail: `the sweep could not record the run: ${err}` });
    }
  });
}

interface RunProcess {
  child: Deno.ChildProcess;
  /** Its exit code, once its output is in the log and the log closed. */
  ended: Promise<number>;
  logPath: string;
  /** Size of train.log before this attempt. */
  logOffset: number;
}

/** Check and write the run's config, open its log and start its command there. */
async function spawnRun(
  run: RunSpec,
  slot: Slot,
  resume: boolean,
  command: CommandBuilder,
): Promise<RunProcess> {
  // A started run continues only with the config it started with.
  const changed = resume ? await configChanges(run) : [];
  if (changed.length) {
    throw new Error(
      `the grid changed since this run started (${changed.join(", ")}); delete ${run.dir} to start it ` +
        `again with the new config, or restore the grid`,
    );
  }
  await writeRunConfig(run);
  const c = command(run, slot, { resume });
  const logPath = `${repoPath(run.dir)}/train.log`;
  const log = await Deno.open(logPath, { append: true, create: true });
  const logOffset = (await log.stat()).size;
  await writeAll(log, enc.encode(`=== ${new Date().toISOString()} sweep on ${slot.name}: ${shellLine(c)}\n`));
  const child = new Deno.Command(c.cmd, {
    args: c.args,
    env: c.env,
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) await writeAll(log, chunk);
  };
  const ended = (async () => {
    const [status] = await Promise.all([child.status, pump(child.stdout), pump(child.stderr)]);
    log.close();
    return status.code;
  })();
  return { child, ended, logPath, logOffset };
}

/** The outcome of a run that exited with `code`. */
async function settle(e: SweepEntry, code: number, proc: RunProcess, o: JobOptions): Promise<void> {
  const { run } = e;
  e.status = await runStatus(run.dir, run.config.epochs);
  const ended = Date.now();
  if (code === 0 && e.status.state === "done") {
    await clearFailure(run.dir);
    await compactRun(run.dir);
    e.status = await runStatus(run.dir, run.config.epochs);
    finish(e, "done", { ended });
    o.say(e, `done in ${fmtSeconds((ended - e.result.started!) / 1000)}, best ${pct(e.status.best)}`);
    return;
  }
  if (o.stopping()) {
    finish(e, "interrupted", { ended, code });
    o.say(e, `interrupted after ${epochCell(e.status)} epochs (exit ${code}); the next sweep resumes it`);
    return;
  }
  let tail = await tailOf(proc.logPath, proc.logOffset, o.tailLines);
  if (code === 0) {
    tail += `\n(exited 0 but the run is not done: ${epochCell(e.status)} epochs logged)`;
  }
  await recordFailure(run.dir, code, tail);
  e.status = await runStatus(run.dir, run.config.epochs);
  finish(e, "failed", { ended, code, tail });
  o.say(e, `FAILED (exit ${code}); see ${run.dir}/train.log`);
}

/** A run that could not start: recorded as failed with the reason. */
async function cannotStart(e: SweepEntry, err: Error, o: JobOptions): Promise<void> {
  const tail = `could not start: ${err.message}`;
  await recordFailure(e.run.dir, -1, tail).catch(() => {});
  finish(e, "failed", { code: -1, tail, ended: Date.now() });
  o.say(e, `FAILED: ${tail}`);
}

/** Send a signal to a run's process if it still runs. */
export function signalJob(e: SweepEntry, sig: Deno.Signal): void {
  try {
    e.child?.kill(sig);
  } catch { /* already gone */ }
}

async function writeAll(f: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await f.write(data.subarray(done));
}

/** The last `n` lines written to `path` after byte `offset` (read from its last 64 KiB at most). */
async function tailOf(path: string, offset: number, n: number): Promise<string> {
  try {
    using f = await Deno.open(path);
    const size = (await f.stat()).size;
    const from = Math.max(offset, size - 65536);
    await f.seek(from, Deno.SeekMode.Start);
    const bytes = new Uint8Array(size - from);
    for (let got = 0; got < bytes.length;) {
      const r = await f.read(bytes.subarray(got));
      if (r === null) break;
      got += r;
    }
    const text = new TextDecoder().decode(bytes);
    // Progress bars redraw with \r: keep what a terminal would show.
    const lines = text.split("\n").map((l) => l.split("\r").filter((p) => p.trim()).pop() ?? "");
    while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
    return lines.slice(-n).join("\n");
  } catch {
    return "";
  }
}
