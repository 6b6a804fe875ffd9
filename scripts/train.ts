/**
 * `deno task train --config NAME|FILE [--key value …] [--out DIR] [--resume] [--smoke]`
 *
 * NAME is a file of configs/ (e.g. fmnist-deit); FILE a .ts or .json path. Every other `--key value` overrides
 * one config key (unknown keys and values out of range are one-line errors; lib/train/config.ts SCHEMA; `--help`
 * lists them). More --workers than cores is refused unless --oversubscribe. The run folder defaults to
 * results/runs/NAME. `--resume` continues from its checkpoint-last (a folder with nothing logged starts fresh),
 * `--resume-from FILE` from another training checkpoint (e.g. its checkpoint-best, when checkpoint-last is
 * damaged); `--restart` starts a folder's run over (log and checkpoints removed). `--smoke` runs a few steps in
 * seconds (into a temporary folder unless --out is given) on the same code path. SIGINT/SIGTERM stop the run after the
 * current step with checkpoint-last written (exit 130); a second signal a few seconds later exits at once.
 */
import { runMain, UsageError } from "../lib/base/cli.ts";
import { REPO_ROOT } from "../lib/base/paths.ts";
import {
  checkResume,
  checkWorkers,
  describeKeys,
  listConfigs,
  loadConfigFile,
  parseOverrides,
  resolveConfig,
  type TrainConfig,
} from "../lib/train/config.ts";
import { LAST_CHECKPOINT } from "../lib/io/train_state.ts";
import { runTraining } from "../lib/train/run.ts";

const USAGE = `usage: deno task train --config NAME|FILE [--key value …] [--out DIR]
       [--resume | --resume-from FILE | --restart] [--smoke]
       [--oversubscribe] (allow more --workers than cores)
configs: ${(await listConfigs()).join(", ")}`;

/**
 * The run folder, before anything is written to it: a folder (or a path where one can be made) that this
 * process can write, and — resuming — the run it holds was started with a config this one may continue.
 */
async function checkRunFolder(dir: string, resume: boolean, config: Readonly<TrainConfig>): Promise<void> {
  // The folder, or the nearest folder above it that exists (where it will be made): a folder that we can write.
  let at = dir.replace(/\/+$/, "") || "/";
  let info = await Deno.stat(at).catch(() => null);
  while (!info && at !== "/" && at !== ".") {
    at = at.includes("/") ? at.slice(0, at.lastIndexOf("/")) || "/" : ".";
    info = await Deno.stat(at).catch(() => null);
  }
  if (info && !info.isDirectory) {
    throw new UsageError(`--out ${dir}: ${at === dir ? "is a file" : `${at} is a file`}, not a folder`);
  }
  try {
    await Deno.remove(await Deno.makeTempFile({ dir: at, prefix: ".write-test-" }));
  } catch (e) {
    throw new UsageError(`--out ${dir}: cannot write in ${at} (${(e as Error).message})`);
  }
  if (!resume || !(await Deno.stat(`${dir}/${LAST_CHECKPOINT}`).then(() => true, () => false))) return;
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).config;
  } catch {
    return; // no readable config.json: the checkpoint's own checks stand
  }
  if (saved && typeof saved === "object") checkResume(dir, saved, config);
}

// The first SIGINT/SIGTERM stops the run cleanly after the current step; one more (not the same Ctrl-C relayed by
// a sweep, hence the delay) exits at once.
const interrupt = new AbortController();
let interruptedAt = 0;
const onSignal = () => {
  if (!interrupt.signal.aborted) {
    interruptedAt = performance.now();
    console.error("stopping after this step (checkpoint-last will be written)…");
    interrupt.abort();
  } else if (performance.now() - interruptedAt > 3000) {
    console.error("interrupted again: exiting without a checkpoint");
    Deno.exit(130);
  }
};
for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, onSignal);

await runMain(async () => {
  const args = [...Deno.args];
  const take = (flag: string, hasValue: boolean): string | boolean | undefined => {
    const i = args.findIndex((a) => a === flag || a.startsWith(flag + "="));
    if (i < 0) return undefined;
    const [a] = args.splice(i, 1);
    if (!hasValue) return true;
    if (a.includes("=")) return a.slice(a.indexOf("=") + 1);
    const v = args.splice(i, 1)[0];
    if (v === undefined) throw new UsageError(`${flag} needs a value\n${USAGE}`);
    return v;
  };
  if (take("--help", false)) {
    console.log(
      `${USAGE}\nconfig keys (--key value; lib/train/config.ts SCHEMA):\n${describeKeys().join("\n")}`,
    );
    return;
  }
  const configArg = take("--config", true) as string | undefined;
  const out = take("--out", true) as string | undefined;
  const resumeFrom = take("--resume-from", true) as string | undefined;
  const restart = take("--restart", false) === true;
  const resume = take("--resume", false) === true;
  const smoke = take("--smoke", false) === true;
  const oversubscribe = take("--oversubscribe", false) === true;
  if (!configArg) throw new UsageError(`--config is required\n${USAGE}`);
  // Everything is checked before anything is written: the config, the machine, the run folder.
  const file = await loadConfigFile(configArg);
  const config = resolveConfig(file.config, parseOverrides(args));
  checkWorkers(config.workers, navigator.hardwareConcurrency, oversubscribe);
  const name = configArg.replace(/^.*\//, "").replace(/\.(ts|json)$/, "");
  if (out !== undefined) await checkRunFolder(out, resume || resumeFrom !== undefined, config);
  const dir = out ?? (smoke ? await Deno.makeTempDir({ prefix: `smoke-${name}-` }) : `results/runs/${name}`);
  if (out === undefined && !smoke) await checkRunFolder(dir, resume || resumeFrom !== undefined, config);
  const logs = await runTraining({
    config,
    out: dir,
    resume,
    resumeFrom,
    restart,
    smoke,
    command: ["deno task train", ...Deno.args].join(" "),
    // Relative to the repository when inside it: a run folder holds no machine's absolute paths.
    configSource: file.path.startsWith(`${REPO_ROOT}/`) ? file.path.slice(REPO_ROOT.length + 1) : file.path,
    signal: interrupt.signal,
  });
  const last = logs[logs.length - 1];
  if (interrupt.signal.aborted && !last?.finished) {
    console.error(`interrupted: checkpoint saved to ${dir}/checkpoint-last.safetensors (--resume continues)`);
    Deno.exit(130);
  }
  console.log(
    `${dir}: ${logs.length} epoch(s) logged; last test acc@1 ${last?.test_acc1.toFixed(2)}, best ${
      last?.best_acc1.toFixed(2)
    }`,
  );
});
