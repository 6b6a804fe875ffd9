/**
 * `deno task doctor`: which TensorFlow.js backends this machine can run, and why not where it cannot;
 * which one `--backend auto` takes.
 */
import { parseArgs } from "@std/cli";
import { initBackend, probeAll, tensorflowUsesGpu } from "../lib/accel/backend.ts";
import { visibleGpus } from "../lib/accel/gpu_select.ts";

const args = parseArgs(Deno.args, { boolean: ["help"] });
if (args.help) {
  console.log("usage: deno task doctor");
  Deno.exit(0);
}
console.log(
  `Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores`,
);
for (const p of await probeAll()) {
  console.log(`${p.name.padEnd(11)} ${p.available ? "available" : "not available"} — ${p.detail}`);
}
const gpus = await visibleGpus();
const cvd = Deno.env.get("CUDA_VISIBLE_DEVICES");
console.log(
  `NVIDIA GPUs this process may use: ${gpus.length}` +
    (gpus.length ? ` (${gpus.map((g) => `${g.index}: ${g.name}`).join("; ")})` : "") +
    (cvd !== undefined ? ` — CUDA_VISIBLE_DEVICES=${cvd}` : ""),
);
const choice = await initBackend("auto");
console.log(`auto → ${choice.name} (${choice.detail})`);
const onGpu = await tensorflowUsesGpu();
if (onGpu !== null) {
  console.log(
    onGpu
      ? "tensorflow: work runs on a GPU (isUsingGpuDevice after a small op)"
      : "tensorflow: NO GPU in use — TensorFlow fell back to the CPU (libcudart.so.11 / libcudnn.so.8 not found, " +
        "or no GPU visible); see the README's multi-GPU section",
  );
}
