/**
 * A fake training run for the sweep tests: `deno run -A fake_job.ts DIR EPOCHS MS MODE` writes config.json,
 * then one log.jsonl line (and a checkpoint-last stand-in) every MS milliseconds, continuing after the lines
 * already logged (a resume). MODE "fail" exits 1 with a message after its first epoch. Every start appends a
 * line to DIR/starts ("fresh" or "resume N"). SIGTERM exits 130 at once (progress is per epoch).
 */
const [dir, epochsArg, msArg, mode = "ok"] = Deno.args;
const epochs = Number(epochsArg), ms = Number(msArg);
await Deno.mkdir(dir, { recursive: true });
Deno.addSignalListener("SIGTERM", () => {
  console.log("fake: terminated");
  Deno.exit(130);
});
const logPath = `${dir}/log.jsonl`;
const done = (await Deno.readTextFile(logPath).catch(() => "")).split("\n").filter((l) => l.trim()).length;
await Deno.writeTextFile(`${dir}/starts`, `${done ? `resume ${done}` : "fresh"} ${Date.now()}\n`, {
  append: true,
});
await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ config: { epochs }, fake: true }));
if (!done) await Deno.writeTextFile(logPath, "");
for (let e = done; e < epochs; e++) {
  await new Promise((r) => setTimeout(r, ms));
  if (mode === "fail" && e === 1) {
    console.error("boom: this row fails on purpose");
    Deno.exit(1);
  }
  const acc = 10 * (e + 1);
  const line = {
    epoch: e,
    test_acc1: acc,
    best_acc1: acc,
    seconds: ms / 1000,
    ...(e === epochs - 1 ? { finished: true } : {}),
  };
  await Deno.writeTextFile(`${dir}/checkpoint-last.safetensors`, "");
  await Deno.writeTextFile(logPath, JSON.stringify(line) + "\n", { append: true });
  console.log(`fake: epoch ${e}`);
}
console.log("fake: done");
