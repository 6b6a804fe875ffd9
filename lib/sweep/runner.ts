/**
 * Runs many training runs on local slots: CPU slots (each run gets ⌊cores / slots⌋ wasm engines) or GPUs (one
 * run per GPU: lib/accel/backend.ts `gpuEnv`, CUDA_VISIBLE_DEVICES for TensorFlow and Mesa's device selection for
 * WebGPU).
 *
 * Done runs are skipped, started ones resume (`--resume`), a run waits until the runs it needs are done and is
 * blocked (not run) when one of them failed. Each run's output goes to `<dir>/train.log`; a failed run (nonzero
 * exit) is recorded in `<dir>/sweep-status.json` with the tail of its output and does not stop the others.
 * Aborting `signal` stops starting runs and sends SIGTERM to the running ones, which save checkpoint-last and
 * exit; `kill` (a second Ctrl-C) sends SIGKILL instead.
 *
 * On a terminal a table is redrawn every second; in a pipe one plain line is printed per state change and per
 * new epoch.
 */
import { gpuEnv } from "../accel/gpu_select.ts";
import { fmtSeconds } from "../base/progress.ts";
import { formatTable } from "../base/text_table.ts";
import { compactRun } from "./compact.ts";
import { configChanges, REPO_ROOT, repoPath, type RunSpec, writeRunConfig } from "./grid.ts";
import { clearFailure, recordFailure, type RunStatus, runStatus } from "./status.ts";
import { elapsedCell, epochCell, pct } from "./view.ts";

/** Where a run executes. */
export interface Slot {
  /** "cpu0", "cpu1", … or "gpu0", "gpu3", … */
  name: string;
  kind: "cpu" | "gpu";
  /** CPU slots: wasm engines per run (`--workers`). */
  workers?: number;
  /** GPU slots: the CUDA device id (nvidia-smi's index). */
  gpu?: string;
  /** GPU slots: its PCI address when nvidia-smi gives it (WebGPU's adapter choice uses it; lib/accel/backend.ts). */
  busId?: string;
}

/** A process to start for a run: the train command, or a test's fake job. */
export interface JobCommand {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}

export type CommandBuilder = (run: RunSpec, slot: Slot, ctx: { resume: boolean }) => JobCommand;

/**
 * Slots from a device list: `cpu` (⌊cores/2⌋ slots, at least 2 when there are 2 cores, capped by
 * maxParallel), `cpu:N` (N slots), or GPU ids `0,1,2,3` (one slot each; at most maxParallel of them).
 */
export function parseDevices(
  spec: string,
  opts: { maxParallel?: number; cores?: number; busIds?: string[] } = {},
): Slot[] {
  const cores = opts.cores ?? navigator.hardwareConcurrency ?? 1;
  const max = opts.maxParallel;
  const s = spec.trim();
  const cpu = s.match(/^cpu(?::(\d+))?$/);
  if (cpu) {
    let n = cpu[1] !== undefined
      ? Number(cpu[1])
      : max ?? Math.min(cores, Math.max(2, Math.floor(cores / 2)));
    if (!Number.isInteger(n) || n < 1) throw new SweepError(`--devices ${spec}: need at least one cpu slot`);
    if (max !== undefined) n = Math.min(n, max);
    const workers = Math.max(1, Math.floor(cores / n));
    return Array.from({ length: n }, (_, i) => ({ name: `cpu${i}`, kind: "cpu" as const, workers }));
  }
  const ids = s.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (ids.length === 0 || ids.some((x) => !/^\d+$/.test(x))) {
    throw new SweepError(`--devices '${spec}': expected cpu, cpu:N or GPU ids like 0,1,2,3`);
  }
  if (new Set(ids).size !== ids.length) throw new SweepError(`--devices '${spec}': a GPU is listed twice`);
  const use = max !== undefined ? ids.slice(0, max) : ids;
  return use.map((id) => {
    const busId = opts.busIds?.[Number(id)];
    return { name: `gpu${id}`, kind: "gpu" as const, gpu: id, ...(busId ? { busId } : {}) };
  });
}

export class SweepError extends Error {
  // runMain prints a UsageError as one line with exit code 2.
  override name = "UsageError";
}

/** The train script, relative to the repository root (commands run there). */
export const TRAIN_SCRIPT = "scripts/train.ts";

/** `deno run -A scripts/train.ts --config <dir>/sweep-config.json --out <dir> [--resume] [--workers N]`. */
export function trainArgs(run: RunSpec, opts: { resume: boolean; workers?: number }): string[] {
  return [
    "run",
    "-A",
    TRAIN_SCRIPT,
    "--config",
    `${run.dir}/sweep-config.json`,
    "--out",
    run.dir,
    ...(opts.resume ? ["--resume"] : []),
    ...(opts.workers !== undefined ? ["--workers", String(opts.workers)] : []),
  ];
}

/** The default command: this Deno running scripts/train.ts on the slot. */
export const trainCommand: CommandBuilder = (run, slot, { resume }) => ({
  cmd: Deno.execPath(),
  args: trainArgs(run, { resume, workers: slot.kind === "cpu" ? slot.workers : undefined }),
  // GPU slots: the run sees its GPU alone (both GPU backends); cpu slots: each run's BLAS keeps to its share.
  env: slot.kind === "gpu" ? gpuEnv(slot.gpu!, slot.busId) : { DEIT_BLAS_THREADS: String(slot.workers) },
});

/** A shell-quoted command line, as printed by --dry-run. */
export function shellLine(c: JobCommand, cmdName = "deno"): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);
  const env = Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${q(v)} `).join("");
  return env + [cmdName, ...c.args].map(q).join(" ");
}

export type Outcome = "done" | "skipped" | "failed" | "blocked" | "interrupted";

export interface RunResult {
  id: string;
  dir: string;
  /** skipped: already done before the sweep; interrupted: stopped by the abort (resumable). */
  outcome: Outcome;
  slot?: string;
  /** Whether it was started with --resume. */
  resumed?: boolean;
  /** Exit code of a failed run. */
  code?: number;
  /** The last lines of a failed run's output. */
  tail?: string;
  /** Why a run was blocked. */
  reason?: string;
  /** Date.now() at start and exit. */
  started?: number;
  ended?: number;
}

export interface SweepResult {
  results: RunResult[];
  interrupted: boolean;
  failed: RunResult[];
  blocked: RunResult[];
}

export interface SweepOptions {
  slots: Slot[];
  /** What to start for a run (default: {@link trainCommand}). */
  command?: CommandBuilder;
  /** Stop: SIGTERM to the running runs (they checkpoint), wait for them, start nothing more. */
  signal?: AbortSignal;
  /** Stop now: SIGKILL to the running runs. */
  kill?: AbortSignal;
  /** Redraw a table (default: stdout is a terminal); otherwise plain lines. */
  tty?: boolean;
  /** Where the view goes (default: stdout). */
  write?: (text: string) => void;
  /** Lines of output kept for a failed run (default 20). */
  tailLines?: number;
  /** Progress polling interval in ms (default 1000). */
  pollMs?: number;
}

interface Live {
  run: RunSpec;
  state: "waiting" | "running" | Outcome;
  slot?: Slot;
  status: RunStatus;
  result: RunResult;
  child?: Deno.ChildProcess;
  exit?: Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Run the runs on the slots; returns when all are done, failed or blocked, or the sweep was aborted. */
export async function runSweep(runs: RunSpec[], opts: SweepOptions): Promise<SweepResult> {
  if (opts.slots.length === 0) throw new SweepError("no slots to run on");
  const command = opts.command ?? trainCommand;
  const tty = opts.tty ?? Deno.stdout.isTerminal();
  const enc = new TextEncoder();
  const write = opts.write ?? ((t: string) => Deno.stdout.writeSync(enc.encode(t)));
  const tailLines = opts.tailLines ?? 20;
  const pollMs = opts.pollMs ?? 1000;
  const t0 = Date.now();

  const lives = new Map<string, Live>();
  for (const run of runs) {
    if (lives.has(run.id)) throw new SweepError(`run ${run.id} is listed twice`);
    const status = await runStatus(run.dir, run.config.epochs);
    const result: RunResult = { id: run.id, dir: run.dir, outcome: "skipped" };
    lives.set(run.id, { run, state: status.state === "done" ? "skipped" : "waiting", status, result });
  }
  const free = [...opts.slots];
  const running = new Set<Live>();
  // Wake the scheduling loop (a run exited, the sweep was stopped); a wake while the loop is busy is kept.
  let kicked = false;
  let resolveKick: (() => void) | undefined;
  const wake = () => {
    kicked = true;
    resolveKick?.();
  };
  const nextKick = () => kicked ? Promise.resolve() : new Promise<void>((r) => (resolveKick = r));
  opts.signal?.addEventListener("abort", () => wake());
  opts.kill?.addEventListener("abort", () => {
    for (const l of running) tryKill(l.child!, "SIGKILL");
    wake();
  });

  // ---- view
  let drawn = 0;
  const stamp = () => `[${fmtSeconds((Date.now() - t0) / 1000)}]`;
  const say = (l: Live, msg: string) => {
    if (!tty) write(`${stamp()} ${l.run.id}: ${msg}\n`);
  };
  const draw = () => {
    if (!tty) return;
    const rows = [...lives.values()].map((l) => {
      const secs = l.result.started
        ? ((l.result.ended ?? Date.now()) - l.result.started) / 1000
        : l.status.seconds;
      return [
        l.run.id,
        l.state,
        l.slot?.name ?? "",
        epochCell(l.status),
        pct(l.status.acc1),
        pct(l.status.best),
        elapsedCell(secs),
      ];
    });
    const table = formatTable(["run", "state", "device", "epoch", "acc1", "best", "elapsed"], rows);
    const counts = [...lives.values()].reduce<Record<string, number>>((c, l) => {
      c[l.state] = (c[l.state] ?? 0) + 1;
      return c;
    }, {});
    const summary = `${stamp()} ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
    const text = `${table}\n${summary}\n`;
    write((drawn > 0 ? `\x1b[${drawn}A\x1b[J` : "") + text);
    drawn = text.split("\n").length - 1;
  };
  for (const l of lives.values()) {
    if (l.state !== "skipped") continue;
    const changed = await configChanges(l.run);
    say(
      l,
      `already done (${epochCell(l.status)} epochs, best ${pct(l.status.best)})` +
        (changed.length
          ? `; NOTE: with an older config (${changed.join(", ")}): delete the folder to redo it`
          : ""),
    );
  }

  const finish = (l: Live, outcome: Outcome, extra: Partial<RunResult> = {}) => {
    l.state = outcome;
    Object.assign(l.result, { outcome, ...extra });
  };

  const start = async (l: Live, slot: Slot) => {
    const { run } = l;
    l.state = "running";
    l.slot = slot;
    const resume = l.status.state !== "pending";
    Object.assign(l.result, { slot: slot.name, resumed: resume, started: Date.now() });
    say(l, `started on ${slot.name}${resume ? ` (resuming after epoch ${l.status.epoch + 1})` : ""}`);
    const dir = repoPath(run.dir);
    let logOffset = 0;
    try {
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
      const logPath = `${dir}/train.log`;
      const log = await Deno.open(logPath, { append: true, create: true });
      logOffset = (await log.stat()).size;
      await writeAll(
        log,
        enc.encode(`=== ${new Date().toISOString()} sweep on ${slot.name}: ${shellLine(c)}\n`),
      );
      const child = new Deno.Command(c.cmd, {
        args: c.args,
        env: c.env,
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      l.child = child;
      const pump = async (s: ReadableStream<Uint8Array>) => {
        for await (const chunk of s) await writeAll(log, chunk);
      };
      l.exit = (async () => {
        const [status] = await Promise.all([child.status, pump(child.stdout), pump(child.stderr)]);
        log.close();
        try {
          await exited(l, status.code, logPath, logOffset);
        } catch (e) {
          finish(l, "failed", { code: status.code, tail: `the sweep could not record the run: ${e}` });
        }
      })();
    } catch (e) {
      // The run could not start (changed config, no such command, unwritable folder): a failure of it alone.
      l.exit = (async () => {
        const tail = `could not start: ${(e as Error).message}`;
        await recordFailure(run.dir, -1, tail).catch(() => {});
        finish(l, "failed", { code: -1, tail, ended: Date.now() });
        say(l, `FAILED: ${tail}`);
      })();
    }
    running.add(l);
    l.exit.finally(() => {
      running.delete(l);
      free.push(slot);
      free.sort((a, b) => opts.slots.indexOf(a) - opts.slots.indexOf(b));
      wake();
    });
  };

  const exited = async (l: Live, code: number, logPath: string, offset: number) => {
    l.status = await runStatus(l.run.dir, l.run.config.epochs);
    const ended = Date.now();
    if (code === 0 && l.status.state === "done") {
      await clearFailure(l.run.dir);
      await compactRun(l.run.dir);
      l.status = await runStatus(l.run.dir, l.run.config.epochs);
      finish(l, "done", { ended });
      say(l, `done in ${fmtSeconds((ended - l.result.started!) / 1000)}, best ${pct(l.status.best)}`);
      return;
    }
    if (opts.signal?.aborted || opts.kill?.aborted) {
      finish(l, "interrupted", { ended, code });
      say(l, `interrupted after ${epochCell(l.status)} epochs (exit ${code}); the next sweep resumes it`);
      return;
    }
    let tail = await tailOf(logPath, offset, tailLines);
    if (code === 0) {
      tail += `\n(exited 0 but the run is not done: ${epochCell(l.status)} epochs logged)`;
    }
    await recordFailure(l.run.dir, code, tail);
    l.status = await runStatus(l.run.dir, l.run.config.epochs);
    finish(l, "failed", { ended, code, tail });
    say(l, `FAILED (exit ${code}); see ${l.run.dir}/train.log`);
  };

  // ---- schedule: runs that others wait for first (most dependents first), then in the given order.
  const dependents = new Map<string, Set<string>>();
  const addDependent = (need: string, id: string) => {
    const set = dependents.get(need) ?? new Set<string>();
    if (set.has(id)) return;
    set.add(id);
    dependents.set(need, set);
    for (const n of lives.get(need)?.run.needs ?? []) addDependent(n, id);
  };
  for (const l of lives.values()) for (const n of l.run.needs) addDependent(n, l.run.id);
  const order = [...lives.values()];
  const queue = [...order].sort((a, b) =>
    (dependents.get(b.run.id)?.size ?? 0) - (dependents.get(a.run.id)?.size ?? 0)
  );
  const bad = new Set<Live["state"]>(["failed", "blocked", "interrupted"]);
  const signalled = new Set<Live>();
  let lastPoll = 0;
  while (true) {
    kicked = false;
    const aborted = opts.signal?.aborted || opts.kill?.aborted;
    if (!aborted) {
      // Blocked: a need failed (or is blocked itself), or is not part of the sweep.
      let changed = true;
      while (changed) {
        changed = false;
        for (const l of order) {
          if (l.state !== "waiting") continue;
          const why = l.run.needs.map((n) => {
            const need = lives.get(n);
            if (!need) return `needs ${n}, which is not part of this sweep`;
            return bad.has(need.state)
              ? `needs ${n}, which ${need.state === "blocked" ? "is blocked" : "failed"}`
              : "";
          }).find((w) => w);
          if (why) {
            finish(l, "blocked", { reason: why });
            say(l, `blocked: ${why}`);
            changed = true;
          }
        }
      }
      for (const l of queue) {
        if (free.length === 0) break;
        if (l.state !== "waiting") continue;
        const ready = l.run.needs.every((n) => ["done", "skipped"].includes(lives.get(n)!.state));
        if (ready) await start(l, free.shift()!);
      }
    }
    if (running.size === 0) {
      for (const l of order) {
        if (l.state !== "waiting") continue;
        if (aborted) finish(l, "interrupted", { reason: "the sweep was stopped before it started" });
        else {
          // Cannot happen with checked needs (no cycles); kept so the loop always ends.
          finish(l, "blocked", { reason: "its needs can never be done" });
          say(l, "blocked: its needs can never be done");
        }
      }
      break;
    }
    if (aborted) {
      for (const l of running) {
        if (!signalled.has(l)) {
          signalled.add(l);
          tryKill(l.child, "SIGTERM");
        }
      }
    }
    await Promise.race([nextKick(), sleep(Math.max(0, pollMs - (Date.now() - lastPoll)))]);
    resolveKick = undefined;
    if (Date.now() - lastPoll >= pollMs) {
      lastPoll = Date.now();
      for (const l of running) {
        const before = l.status.epoch;
        l.status = await runStatus(l.run.dir, l.run.config.epochs);
        if (l.status.epoch > before) {
          say(l, `epoch ${epochCell(l.status)}, acc1 ${pct(l.status.acc1)}, best ${pct(l.status.best)}`);
        }
      }
      draw();
    }
  }
  draw();
  const results = order.map((l) => l.result);
  return {
    results,
    interrupted: !!(opts.signal?.aborted || opts.kill?.aborted),
    failed: results.filter((r) => r.outcome === "failed"),
    blocked: results.filter((r) => r.outcome === "blocked"),
  };
}

function tryKill(child: Deno.ChildProcess | undefined, sig: Deno.Signal): void {
  try {
    child?.kill(sig);
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
