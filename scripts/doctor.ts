/**
 * `deno task doctor`: which TensorFlow.js backends this machine can run, and why not where it cannot;
 * which one `--backend auto` takes.
 */
import { parseArgs } from "@std/cli";
import { initBackend, probeAll } from "../lib/backend.ts";

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
const choice = await initBackend("auto");
console.log(`auto → ${choice.name} (${choice.detail})`);
