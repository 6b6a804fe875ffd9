/**
 * `deno task train --config NAME|FILE [--key value …] [--out DIR] [--resume] [--smoke]`
 *
 * NAME is a file of configs/ (e.g. fmnist-deit); FILE a .ts or .json path. Every other `--key value` overrides
 * one config key (unknown or mistyped keys are errors; see lib/train/config.ts). The run folder defaults to
 * results/runs/NAME. `--resume` continues from its checkpoint-last (a folder with nothing logged starts fresh),
 * `--resume-from FILE` from another training checkpoint (e.g. its checkpoint-best, when checkpoint-last is
 * damaged); `--restart` starts a folder's run over (log and checkpoints removed). `--smoke` runs a few steps in
 * seconds (into a temporary folder unless --out is given) on the same code path. SIGINT/SIGTERM stop the run after the
 * current step with checkpoint-last written (exit 130); a second signal a few seconds later exits at once.
 */
import { runMain, UsageError } from "../lib/base/cli.ts";
import { REPO_ROOT } from "../lib/base/paths.ts";
import { listConfigs, loadConfigFile, parseOverrides, resolveConfig } from "../lib/train/config.ts";
import { runTraining } from "../lib/train/run.ts";

const USAGE = `usage: deno task train --config NAME|FILE [--key value …] [--out DIR]
       [--resume | --resume-from FILE | --restart] [--smoke]
configs: ${(await listConfigs()).join(", ")}`;

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
    console.log(USAGE);
    return;
  }
  const configArg = take("--config", true) as string | undefined;
  const out = take("--out", true) as string | undefined;
  const resumeFrom = take("--resume-from", true) as string | undefined;
  const restart = take("--restart", false) === true;
  const resume = take("--resume", false) === true;
  const smoke = take("--smoke", false) === true;
  if (!configArg) throw new UsageError(`--config is required\n${USAGE}`);
  const file = await loadConfigFile(configArg);
  const config = resolveConfig(file.config, parseOverrides(args));
  const name = configArg.replace(/^.*\//, "").replace(/\.(ts|json)$/, "");
  const dir = out ?? (smoke ? await Deno.makeTempDir({ prefix: `smoke-${name}-` }) : `results/runs/${name}`);
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
