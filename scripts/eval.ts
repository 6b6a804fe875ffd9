/**
 * `deno task eval --model NAME --checkpoint FILE --data DIR [--predictions FILE.jsonl] [--batch-size N]
 *  [--backend B]`: top-1 / top-5 of a checkpoint on an ImageFolder with DeiT's eval transform, for any
 * registered model (a DeiT, or a RegNetY teacher); the crop size is the model's (224, 384, or a fixture's).
 */
import { initBackend } from "../lib/accel/backend.ts";
import { intFlag, parseFlags, runMain, UsageError } from "../lib/base/cli.ts";
import { loadCheckpoint } from "../lib/io/checkpoint.ts";
import { scanImageFolder } from "../lib/data/imagefolder.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { buildModel, getEntry } from "../lib/models/registry.ts";

const USAGE = `usage: deno task eval --model NAME --checkpoint FILE(.pth|.safetensors) --data DIR
       [--predictions FILE.jsonl] [--batch-size 32] [--backend auto|tensorflow|webgpu|wasm|cpu]
DIR is an ImageFolder: one sub-folder per class, class index = position in the sorted folder names.`;

/**
 * A file this process can write (before any work, and without touching it): an existing file, or a new one in a
 * folder that exists and takes files.
 */
async function checkWritable(path: string, flag: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (info?.isDirectory) throw new UsageError(`${flag} ${path} is a folder; give a file name (e.g. p.jsonl)`);
  if (info) {
    try {
      (await Deno.open(path, { write: true })).close();
    } catch (e) {
      throw new UsageError(`${flag} ${path}: cannot write it (${(e as Error).message})`);
    }
    return;
  }
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const d = await Deno.stat(dir).catch(() => null);
  if (!d?.isDirectory) throw new UsageError(`${flag} ${path}: the folder ${dir} does not exist`);
  try {
    await Deno.remove(await Deno.makeTempFile({ dir, prefix: ".write-test-" }));
  } catch (e) {
    throw new UsageError(`${flag} ${path}: cannot write in ${dir} (${(e as Error).message})`);
  }
}

await runMain(async () => {
  const a = parseFlags(Deno.args, {
    string: ["model", "checkpoint", "data", "predictions", "batch-size", "backend"],
    default: { "batch-size": "32", backend: "auto" },
  }, USAGE);
  for (const k of ["model", "checkpoint", "data"]) {
    if (!a[k]) throw new UsageError(`--${k} is required\n${USAGE}`);
  }
  const batchSize = intFlag(a["batch-size"], "batch-size");
  if (a.predictions !== undefined) await checkWritable(String(a.predictions), "--predictions");
  getEntry(String(a.model)); // an unknown model name fails here, before any work
  const backend = await initBackend(String(a.backend));
  const folder = await scanImageFolder(String(a.data));
  const model = buildModel(String(a.model));
  const report = await loadCheckpoint(model, String(a.checkpoint));
  for (const note of report.adapted) console.error(`note: ${note}`);
  if (folder.classes.length > model.config.numClasses) {
    throw new UsageError(
      `${a.data} has ${folder.classes.length} classes but the model has ${model.config.numClasses} outputs`,
    );
  }
  console.error(
    `${a.model} on ${backend.name}: ${folder.samples.length} images, ${folder.classes.length} classes`,
  );
  const r = await evaluate(model, folder.samples, {
    size: model.config.imgSize,
    batchSize,
    predictionsPath: a.predictions ? String(a.predictions) : undefined,
  });
  for (const u of r.unreadable) console.error(`unreadable: ${u.file}: ${u.reason}`);
  if (r.nonFinite) {
    console.error(
      `warning: ${r.nonFinite} of ${r.count} images got NaN or infinite outputs (counted wrong): ` +
        "the checkpoint's weights are broken (a diverged run?)",
    );
  }
  console.log(
    `top-1 ${r.top1.toFixed(3)}%  top-5 ${r.top5.toFixed(3)}%  images ${r.count}` +
      (r.unreadable.length ? ` (+${r.unreadable.length} unreadable)` : "") +
      `  ${r.imagesPerS.toFixed(1)} images/s  (${backend.name}, batch ${batchSize})`,
  );
  if (a.predictions) console.error(`predictions written to ${a.predictions}`);
  model.dispose();
});
