/**
 * lib/report: run records, tables (values, deltas, the "does not show here" notes), CSV/markdown writing and
 * figures, on run folders written by the test.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "@std/assert";
import { fmtSeconds } from "../lib/base/progress.ts";
import { readRun, runSeries } from "../lib/report/runs.ts";
import { ablationTable, modelTable } from "../lib/report/tables.ts";
import { formatCell, tableCsv, tableMarkdown, tableText, writeTable } from "../lib/report/result_table.ts";
import { barChart, heatmapGrid, imageGrid, lineChart } from "../lib/report/plots.ts";
import { loadGrid } from "../lib/sweep/grid.ts";
import { initBackend } from "../lib/accel/backend.ts";
import { stateDictOf } from "../lib/io/checkpoint.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";
import { buildVit } from "../lib/models/registry.ts";
import { loadRunModel } from "../lib/report/analysis.ts";

async function fakeRun(dir: string, accs: number[], epochs = accs.length) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({
      config: { epochs, model: "deit_micro_patch7_28" },
      derived: { num_classes: 10, img_size: 28 },
      commit: "abc1234",
      machine: "test",
    }),
  );
  await Deno.writeTextFile(
    `${dir}/log.jsonl`,
    accs.map((a, epoch) =>
      JSON.stringify({
        epoch,
        lr: 1e-3,
        train_loss: 1,
        test_loss: 1,
        test_acc1: a,
        test_acc5: 99,
        images_per_s: 10,
        seconds: 60,
        steps: 1,
        best_acc1: a,
      }) + "\n"
    ).join(""),
  );
}

Deno.test("readRun: a missing folder is null, a run reads back with its last evaluated accuracy and wall time", async () => {
  const root = await Deno.makeTempDir();
  assertEquals(await readRun(`${root}/nothing`), null);
  await fakeRun(`${root}/r`, [50, 60, NaN], 3);
  const r = (await readRun(`${root}/r`))!;
  assert(r.done);
  assertEquals(r.acc1, 60); // epoch 3 was not evaluated (NaN → null in JSON)
  assertEquals(r.seconds, 180);
  assertEquals(runSeries(r, "x"), { name: "x", x: [1, 2], y: [50, 60] });
  await Deno.writeTextFile(`${root}/r/log.jsonl`, "{not json\n");
  let err = "";
  await readRun(`${root}/r`).catch((e) => (err = e.message));
  assertMatch(err, /log\.jsonl: line 1 is not JSON/);
  assertEquals(fmtSeconds(3900, "words"), "1 h 05 min");
  assertEquals(fmtSeconds(40, "words"), "40 s");
  assertEquals(fmtSeconds(NaN, "words"), "—");
  assertEquals([fmtSeconds(3900), fmtSeconds(725), fmtSeconds(40), fmtSeconds(NaN)], [
    "1h05m",
    "12m05s",
    "40.0s",
    "?",
  ]);
});

Deno.test("ablationTable: ours beside the paper, deltas against each default, notes where the sign differs", async () => {
  const root = await Deno.makeTempDir();
  await fakeRun(`${root}/recipe/deit`, [70, 80]);
  await fakeRun(`${root}/recipe/no-mixup`, [70, 82]); // paper: −3.1; ours: +2 → a note
  await fakeRun(`${root}/recipe/no-cutmix`, [70, 79]); // paper −1.8, ours −1: agrees
  await fakeRun(`${root}/recipe/sgd`, [70], 2); // unfinished
  const t = await ablationTable(root, { evaluateEma: false });
  const rows = Object.fromEntries(t.rows.map((r) => [r.run as string, r]));
  const grid = await loadGrid("recipe");
  assertEquals(t.rows.length, grid.rows.length);
  assertEquals(rows[`${root}/recipe/deit`].ours, 80);
  assertEquals(rows[`${root}/recipe/no-mixup`].ours_delta, 2);
  assertEquals(rows[`${root}/recipe/no-mixup`].paper, 78.7);
  assertEquals(rows[`${root}/recipe/sgd`].status, "epoch 1/2");
  assertEquals(rows[`${root}/recipe/plain`].status, "not run");
  const notes = t.notes.join("\n");
  assertStringIncludes(notes, "− Mixup");
  assert(!notes.includes("− CutMix"), notes);
  const md = tableMarkdown(t);
  assertStringIncludes(md, "| DeiT recipe (default) | 81.8 | — | 80.00 |");
  const csv = tableCsv(t);
  assertEquals(csv.split("\n")[0], "row,paper,paper_delta,ours,ours_delta,status,wall,config,run,commit");
  const files = await writeTable(t, `${root}/out`);
  assertEquals(files.length, 3);
  assertEquals(
    JSON.parse(await Deno.readTextFile(`${root}/out/ablation.json`)).rows.length,
    grid.rows.length,
  );
});

Deno.test("table cells and CSV quoting; the model table has the paper's 8 variants", () => {
  assertEquals(formatCell(null), "—");
  assertEquals(formatCell(NaN), "—");
  assertEquals(formatCell(1.234, 1), "1.2");
  const t = modelTable();
  assertEquals(t.rows.length, 8);
  const csv = tableCsv({ ...t, rows: [{ model: 'a,"b"' }], columns: [{ key: "model", title: "m" }] });
  assertEquals(csv, 'model\n"a,""b"""\n');
});

Deno.test("result tables: a pipe in a cell is escaped once; meta goes to the JSON; the plain-text table", async () => {
  const t = {
    name: "t",
    title: "T",
    intro: ["about"],
    columns: [{ key: "m", title: "model" }, { key: "n", title: "batch", digits: 0 }],
    rows: [{ m: "a|b", n: 32 }],
    notes: [],
    meta: { date: "2026-01-01", machine: "m" },
  };
  assertEquals(tableMarkdown(t), "# T\n\nabout\n\n| model | batch |\n| --- | --- |\n| a\\|b | 32 |\n");
  assertEquals(tableText(t), "model  batch\n-----  -----\na|b       32");
  const dir = await Deno.makeTempDir();
  await writeTable(t, dir);
  const json = JSON.parse(await Deno.readTextFile(`${dir}/t.json`));
  assertEquals([json.date, json.machine, json.rows], ["2026-01-01", "m", [{ m: "a|b", n: 32 }]]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("figures: standalone SVG (title inside), heat maps, PNG image grid", async () => {
  const line = lineChart([{ name: "a", x: [1, 2], y: [3, 4] }], { x: "epoch", y: "acc", title: "T & t" });
  assertEquals(line.kind, "svg");
  const svg = line.data as string;
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), svg.slice(0, 80));
  assertStringIncludes(svg, "T &amp; t");
  assertStringIncludes(svg, "<path");
  const bars = barChart([{ label: "x", value: 50, group: "ours" }], { x: "top-1" });
  assertStringIncludes(bars.data as string, "ours 50.0");
  const heat = heatmapGrid([{ row: "r", column: "c", side: 2, values: [0, 1, 2, 3] }]);
  assertEquals(((heat.data as string).match(/<rect/g) ?? []).length >= 4, true);
  const img = { data: new Uint8Array(4 * 4 * 3).fill(128), width: 4, height: 4, channels: 3 as const };
  const png = await imageGrid([img, img, img], { columns: 2, scale: 2, gap: 1 });
  assertEquals(png.kind, "png");
  assertEquals(Array.from((png.data as Uint8Array).slice(1, 4)), [80, 78, 71]); // "PNG"
});

Deno.test("loadRunModel with ema: the flat internal-layout EMA comes back in timm's layout", async () => {
  await initBackend("cpu");
  const root = await Deno.makeTempDir();
  const dir = `${root}/run`;
  await fakeRun(dir, [50]);
  // A checkpoint whose EMA equals the live weights (as after one update with decay 0): stored as the trainer
  // stores it, flat and in the internal layout (linear weights [in, out], the patch embedding [p·p·C, D]).
  const m = buildVit("deit_micro_patch7_28", { numClasses: 10, imgSize: 28 }, 5);
  const sd = await stateDictOf(m);
  for (const [k, v] of m.params) {
    const data = v.dataSync() as Float32Array;
    sd.set(`_train.ema.${k}`, { dtype: "F32", shape: [data.length], data: data.slice() });
  }
  await writeSafetensors(`${dir}/checkpoint-last.safetensors`, sd);
  const live = await loadRunModel(dir), ema = await loadRunModel(dir, { ema: true });
  for (const [k, v] of live.model.params) {
    assertEquals(Array.from(ema.model.params.get(k)!.dataSync()), Array.from(v.dataSync()), k);
  }
  for (const x of [m, live.model, ema.model]) x.dispose();
  await Deno.remove(root, { recursive: true });
});

Deno.test("matched teachers: the stronger teacher's snapshot nearest the weaker's final accuracy", async () => {
  const { chooseMatch } = await import("../lib/report/teachers.ts");
  const log = (accs: (number | null)[]) =>
    accs.map((a, i) => ({ epoch: i, test_acc1: a, ...(i === accs.length - 1 ? { finished: true } : {}) }));
  const regnet = { dir: "r", log: log([50, 70, null, 80, 85, 88]), snapshots: [2, 4, 6] };
  const deit = { dir: "d", log: log([40, 60, 75, 81]), snapshots: [2, 4] };
  const c = chooseMatch(regnet, deit);
  // RegNet after 4 epochs: 80, nearest deit's final 81 (after 2: 70; after 6: 88).
  assertEquals(c.teachers, [
    { dir: "r", epoch: 4, acc1: 80, final_acc1: 88 },
    { dir: "d", epoch: 4, acc1: 81, final_acc1: 81 },
  ]);
  assertEquals(c.gap, 1);
  assertThrows(() => chooseMatch({ ...regnet, log: regnet.log.slice(0, 3) }, deit), Error, "not finished");
});

Deno.test("claims: paired verdicts (every seed / the opposite in every seed / mixed / pending) and mean ± sd", async () => {
  const { formatStats, pairVerdict, stats } = await import("../lib/report/claims.ts");
  assertEquals(pairVerdict([80, 81, 82], [79, 80.5, 81], 6), "shown");
  assertEquals(pairVerdict([78, 79, 80], [79, 80.5, 81], 6), "not shown: the opposite in every seed");
  assertEquals(pairVerdict([80, 79, 82], [79, 80.5, 81], 6), "inconclusive: the seeds disagree");
  assertEquals(pairVerdict([80, null, 82], [79, 80.5, 81], 6), "pending (5 of 6 runs finished)");
  assertEquals(pairVerdict([80], [79], 2), "shown (1 seed)");
  const s = stats([1, 2, 3, null]);
  assertEquals([s.n, s.mean, s.std, s.min, s.max], [3, 2, 1, 1, 3]);
  assertEquals(formatStats([1, 2, 3]), "2.00 ± 1.00 (3 seeds, 1.00–3.00)");
  assertEquals(formatStats([null]), "—");
});

Deno.test("claims: the table from run folders — verdicts per row, pending rows, the undistilled twins beside (b)", async () => {
  const { claimsTable } = await import("../lib/report/claims.ts");
  const root = await Deno.makeTempDir();
  for (const s of [0, 1, 2]) {
    await fakeRun(`${root}/claims-distill/hard-s${s}`, [70, 80 + s]);
    await fakeRun(`${root}/claims-distill/soft-s${s}`, [70, 79 + s]);
    await fakeRun(`${root}/claims/deit-s${s}`, [70, 74]);
    if (s < 2) await fakeRun(`${root}/claims/plain-s${s}`, [70, 82]);
  }
  await fakeRun(`${root}/claims/deit-2k5-s0`, [70, 80], 3); // unfinished
  await fakeRun(`${root}/headline/fmnist-deit`, [70, 90.5]);
  await fakeRun(`${root}/headline/fmnist-vit-plain`, [70, 92]);
  const rows = (await claimsTable(root)).rows;
  // (a)'s 60k pair: one seed, reported beside the verdict (which comes from the 2,500-image pair alone).
  assertStringIncludes(
    String(rows[0].ours),
    "DeiT 90.50 (1 seed) vs plain 92.00 (1 seed), difference -1.50 (one seed: not counted in the verdict)",
  );
  assertEquals(rows.map((r) => String(r.claim).slice(1, 2)).join(""), "abcdefg");
  const b = rows[1];
  assertEquals(b.verdict, "shown");
  assertStringIncludes(String(b.ours), "hard 81.00 ± 1.00 (3 seeds, 80.00–82.00)");
  assertStringIncludes(String(b.ours), "difference 1.00 ± 0.00 (3 seeds, 1.00–1.00)");
  assertStringIncludes(String(b.ours), "no teacher, DeiT recipe (claims/deit-sN) 74.00 ± 0.00 (3 seeds");
  assertStringIncludes(String(b.ours), "no teacher, plain recipe (claims/plain-sN) 82.00 ± 0.00 (2 seeds");
  assertEquals(b.machine_time, fmtSeconds(6 * 120, "words")); // the six students; the twins count under (a)
  assertEquals(rows[0].verdict, "pending (0 of 6 runs finished)");
  assertEquals(rows[2].verdict, "pending (3 of 6 runs finished)"); // hard done, token not started
  assertEquals(rows[6].verdict, "pending (0 of 3 runs finished)");
});

Deno.test("claims: the README's claims table says what results/claims.json says", async () => {
  const { claimsBlockCells, readmeClaimsBlock, withClaimsBlock } = await import("../lib/report/claims.ts");
  const rows = JSON.parse(await Deno.readTextFile(new URL("../results/claims.json", import.meta.url))).rows;
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const expected = claimsBlockCells(readmeClaimsBlock(rows));
  assertEquals(expected.length, 2 + 7); // header, separator, claims (a)–(g)
  assertEquals(claimsBlockCells(readme), expected, "README.md is stale: run deno task reproduce --no-train");
  // Replacing the block keeps what is around it; a README without (or with two) blocks is refused.
  const one = [{ claim: "(a) x", paper: "1", short: "2 | 3", verdict: "shown" }];
  const doc = withClaimsBlock(`before\n${readmeClaimsBlock(rows)}\nafter`, readmeClaimsBlock(one));
  assert(doc.startsWith("before\n") && doc.endsWith("\nafter"));
  assertEquals(claimsBlockCells(doc)[2], ["(a) x", "1", "2 \\| 3", "shown"]);
  assertThrows(() => withClaimsBlock("no block", "x"), Error, "exactly one claims block");
  assertThrows(() => withClaimsBlock(doc + doc, "x"), Error, "exactly one claims block");
});

Deno.test("throughput: the batch search doubles while a doubling gains ≥ 3%, within what fits", async () => {
  const { searchBatch } = await import("../lib/report/throughput.ts");
  const curve: Record<number, number> = { 4: 50, 8: 60, 16: 63, 32: 64, 64: 70 };
  const plan = { startBatch: 4, minGain: 0.03 };
  const r = await searchBatch(plan, 1024, (b) => Promise.resolve(curve[b]));
  assertEquals(r.search.map((p) => p.batch), [4, 8, 16, 32]); // 16 gains 5%, 32 only 1.6%: stop
  assertEquals(r.batch, 32);
  const capped = await searchBatch(plan, 8, (b) => Promise.resolve(curve[b]));
  assertEquals(capped.search.map((p) => p.batch), [4, 8]);
  const falling = await searchBatch(plan, 1024, (b) => Promise.resolve(100 - b));
  assertEquals(falling.batch, 4);
  assertEquals(
    (await searchBatch({ startBatch: 2, minGain: 0.03 }, 2, () => Promise.resolve(1))).search.length,
    1,
  );
});

Deno.test("claims (d): the teachers' match is read from a root relative to the repository, from any cwd", async () => {
  const { claimsTable } = await import("../lib/report/claims.ts");
  // Notebooks run in notebooks/ and pass "results/runs": every path must resolve from the repository root.
  const rel = `.cache/claims-test-${crypto.randomUUID()}`;
  const abs = new URL(`../${rel}`, import.meta.url).pathname;
  await Deno.mkdir(`${abs}/claims/teacher-regnet`, { recursive: true });
  await Deno.writeTextFile(
    `${abs}/claims/teacher-regnet/teacher-match.json`,
    JSON.stringify({ teachers: [{ dir: "x/teacher-regnet", epoch: 30, acc1: 81.28 }], gap: 0.46 }),
  );
  const cwd = Deno.cwd();
  Deno.chdir(new URL(".", import.meta.url).pathname);
  try {
    const d = (await claimsTable(rel)).rows[3];
    assertStringIncludes(String(d.ours), "teachers teacher-regnet 81.28 (after 30 epochs), gap 0.46");
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(abs, { recursive: true });
  }
});
