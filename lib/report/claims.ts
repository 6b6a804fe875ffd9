/**
 * The paper's claims (a)–(g), each with the experiment here that could show it (configs/grids/claims.ts and
 * claims-distill.ts, the headline pair in headline.ts), and a plain verdict: results/claims.md / .json.
 *
 * A comparison is paired by seed (the same seed gives both arms the same initialisation, augmentation and batch
 * order; the 10k subset is fixed). Verdict: "shown" when the paper's order holds in every seed, "not shown" when
 * the opposite order holds in every seed, "inconclusive" when the seeds disagree; "pending" while a run of it is
 * unfinished. Ours is the mean ± standard deviation over the seeds, with their range.
 */
import * as tf from "@tensorflow/tfjs";
import type { VisionTransformer } from "../vit/model.ts";
import { tokenSimilarity } from "../distill/analysis.ts";
import { evalBatch, evaluateHead, loadRunModel, runTestSet } from "./analysis.ts";
import { fmtSeconds } from "../base/progress.ts";
import { readRun, type RunRecord } from "./runs.ts";
import { repoPath } from "../base/paths.ts";
import type { Cell, ResultTable } from "./result_table.ts";
import { markdownTable } from "../base/text_table.ts";
import { type Difference, differenceChart, type Figure } from "./plots.ts";

type Head = "cls" | "dist" | "both";

/** One side of a comparison: a run per seed (folders under the runs root), read through one head. */
export interface Arm {
  label: string;
  runs: string[];
  head?: Head;
}

export interface ArmResult {
  label: string;
  /** Final test top-1 per seed (null: unfinished). */
  acc: (number | null)[];
  /** Training-set top-1 (eval transform) per seed where logged. */
  trainAcc: (number | null)[];
  done: number;
  seconds: number;
  /** Per finished seed: test top-1 gained over the last fifth of the epochs (a plateau gains < 0.5). */
  rise: (number | null)[];
}

interface PairSpec {
  id: string;
  claim: string;
  paper: string;
  experiment: string;
  /** The arm the paper says is better, and the other. */
  better: Arm;
  worse: Arm;
  /** The paper's difference (its better arm minus the other), in top-1 points. */
  paperDiff: number;
  /** Runs that the comparison also cost (teachers; the other pairs of (a)), for the machine time. */
  alsoRuns?: string[];
  /** Arms reported beside the comparison for scale (already costed by another row). */
  references?: Arm[];
  change: string;
}

const SEEDS = [0, 1, 2];
const seeds = (grid: string, row: string) => SEEDS.map((s) => `${grid}/${row}-s${s}`);

/** The students' undistilled twins (claim (a)'s deit_micro pair): does a teacher help at all here? */
const NO_TEACHER: Arm[] = [
  { label: "no teacher, DeiT recipe (claims/deit-sN)", runs: seeds("claims", "deit") },
  { label: "no teacher, plain recipe (claims/plain-sN)", runs: seeds("claims", "plain") },
];

/** The comparisons of claims (a)–(f). */
export const CLAIMS: PairSpec[] = [
  {
    id: "a",
    paperDiff: 3.9,
    claim: "(a) DeiT's training recipe makes a ViT data-efficient (vs a plain recipe)",
    paper: "ViT-B trained on ImageNet-1k alone 77.9 → DeiT-B with the recipe 81.8",
    experiment:
      "deit_mini_patch4_28 on 2,500 Fashion-MNIST images × 200 epochs, where a plain recipe fits its " +
      "training images (train − test top-1 below): claims/deit-2k5-sN vs plain-2k5-sN; also deit_micro on 10k × " +
      "100 epochs (claims/deit-sN vs plain-sN) and all 60k × 100 epochs (headline pair, 1 seed)",
    better: { label: "DeiT recipe", runs: seeds("claims", "deit-2k5") },
    worse: { label: "plain recipe", runs: seeds("claims", "plain-2k5") },
    alsoRuns: [
      ...seeds("claims", "deit"),
      ...seeds("claims", "plain"),
      "headline/fmnist-deit",
      "headline/fmnist-vit-plain",
    ],
    change:
      "a schedule long enough for the DeiT recipe to fit its own training images (its train top-1 stays " +
      "near its test top-1: it underfits after 3,600 steps of 128, against the paper's ~375,000 of 1,024), on " +
      "ImageNet-scale data, where the plain ViT's overfitting is the paper's point",
  },
  {
    id: "b",
    paperDiff: 1.2,
    claim: "(b) hard distillation beats the usual soft distillation",
    paper: "DeiT-B: hard (class token) 83.0 vs soft 81.8",
    experiment: "deit_micro student, RegNetY-200MF teacher (accuracy-matched), 10k × 100 epochs, teacher " +
      "only on the class token: claims-distill/hard-sN vs soft-sN",
    better: { label: "hard", runs: seeds("claims-distill", "hard") },
    worse: { label: "soft (τ 3)", runs: seeds("claims-distill", "soft") },
    alsoRuns: ["claims/teacher-regnet"],
    references: NO_TEACHER,
    change: "a teacher as close to its student as the paper's (RegNetY-16GF, 82.9, is 1.1 points above " +
      "DeiT-B; ours is several points above the undistilled deit_micro), and more seeds",
  },
  {
    id: "c",
    paperDiff: 0.4,
    claim: "(c) the distillation token beats distilling through the class token",
    paper: "DeiT-B⚗ 83.4 vs hard distillation through the class token 83.0 (no distillation 81.8)",
    experiment: "claims-distill/token-sN ((cls + dist)/2) vs hard-sN; the same teacher, 10k × 100 epochs",
    better: { label: "DeiT⚗ (cls+dist)/2", runs: seeds("claims-distill", "token"), head: "both" },
    worse: { label: "class-token hard", runs: seeds("claims-distill", "hard") },
    alsoRuns: ["claims/teacher-regnet"],
    references: NO_TEACHER,
    change: "more seeds: the paper's margin is 0.4 points",
  },
  {
    id: "d",
    paperDiff: 0.8,
    claim: "(d) a convnet teacher beats a transformer teacher of the same accuracy",
    paper: "DeiT-B⚗: RegNetY-8GF teacher (81.7) → 82.7 vs DeiT-B teacher (81.8) → 81.9",
    experiment:
      "claims-distill/token-sN (RegNetY-200MF teacher) vs token-deit-sN (deit_micro teacher), the " +
      "teachers within a point of each other (checkpoint-matched)",
    better: { label: "convnet teacher", runs: seeds("claims-distill", "token"), head: "both" },
    worse: { label: "transformer teacher", runs: seeds("claims-distill", "token-deit"), head: "both" },
    alsoRuns: ["claims/teacher-regnet", "claims/teacher-deit"],
    change: "teachers of several accuracies (the paper's Table 2 spans four RegNets)",
  },
  {
    id: "e",
    paperDiff: 1.6,
    claim: "(e) pre-training transfers: fine-tuning beats training from scratch on a small target set",
    paper: "CIFAR-10: DeiT-B fine-tuned from ImageNet 99.1 vs from scratch 97.5",
    experiment:
      "deit_mini_patch4_28 on the 1,297 sklearn digits, 100 epochs, one recipe and learning rate: " +
      "fine-tuned from headline/fmnist-deit (90.61% on Fashion-MNIST) vs from scratch: " +
      "claims/digits-finetune-sN vs digits-scratch-sN",
    better: { label: "fine-tuned", runs: seeds("claims", "digits-finetune") },
    worse: { label: "from scratch", runs: seeds("claims", "digits-scratch") },
    alsoRuns: ["headline/fmnist-deit"],
    change: "a source task closer to the target (digits from Fashion-MNIST share little)",
  },
  {
    id: "f",
    paperDiff: 1.3,
    claim: "(f) fine-tuning at a higher resolution adds accuracy",
    paper: "DeiT-B 81.8 at 224 → 83.1 fine-tuned at 384",
    experiment:
      "each claims/deit-sN + 10 epochs at 42 px (position embeddings resampled 4×4 → 6×6) vs the same " +
      "10 epochs at 28 px from the same weights: claims/res42-sN vs res28-sN",
    better: { label: "+10 epochs at 42 px", runs: seeds("claims", "res42") },
    worse: { label: "+10 epochs at 28 px", runs: seeds("claims", "res28") },
    change: "images with detail beyond 28 px (Fashion-MNIST has none: 42 px is only interpolated)",
  },
];

/** A run's final test top-1 through `head` (the run's own inference head: its last logged evaluation). */
async function finalAcc(
  root: string,
  dir: string,
  head?: Head,
): Promise<{ run: RunRecord | null; acc: number | null }> {
  const run = await readRun(`${root}/${dir}`);
  if (!run?.done) return { run, acc: null };
  if (!head || head === run.derived.inference_head) return { run, acc: run.acc1 };
  const { model } = await loadRunModel(`${root}/${dir}`);
  try {
    const m = await evaluateHead(model, await runTestSet(run), run.derived.img_size, head);
    return { run, acc: m.acc1 };
  } finally {
    model.dispose();
  }
}

export async function armResult(root: string, arm: Arm): Promise<ArmResult> {
  const out: ArmResult = { label: arm.label, acc: [], trainAcc: [], done: 0, seconds: 0, rise: [] };
  for (const dir of arm.runs) {
    const { run, acc } = await finalAcc(root, dir, arm.head);
    out.acc.push(acc);
    const lastTrain = [...(run?.logs ?? [])].reverse().find((l) => Number.isFinite(l.train_acc1 ?? NaN));
    out.trainAcc.push(run?.done && lastTrain ? lastTrain.train_acc1! : null);
    out.rise.push(run?.done ? lastFifthRise(run) : null);
    if (run?.done) out.done++;
    out.seconds += run?.seconds ?? 0;
  }
  return out;
}

/** Test top-1 after the last epoch minus at the evaluation nearest 80% of the epochs. */
export function lastFifthRise(run: RunRecord): number | null {
  const ev = run.logs.filter((l) => Number.isFinite(l.test_acc1));
  if (ev.length < 2) return null;
  const target = 0.8 * run.config.epochs;
  const at = ev.reduce((a, l) => (Math.abs(l.epoch + 1 - target) < Math.abs(a.epoch + 1 - target) ? l : a));
  return ev[ev.length - 1].test_acc1 - at.test_acc1;
}

/** "plateau" or "still rising (+x over the last fifth)", from the largest rise over the seeds. */
function plateauNote(...arms: ArmResult[]): string {
  const rises = arms.flatMap((a) => a.rise).filter((r): r is number => r !== null);
  if (rises.length === 0) return "";
  const worst = Math.max(...rises);
  return worst < 0.5
    ? `; every run at a plateau (≤ ${worst.toFixed(2)} points gained over its last fifth)`
    : `; NOT at a plateau: up to ${worst.toFixed(2)} points gained over the last fifth of a run`;
}

/** mean, standard deviation (n − 1) and range of the finished values. */
export function stats(
  xs: (number | null)[],
): { n: number; mean: number; std: number; min: number; max: number } {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  return { n, mean, std, min: Math.min(...v), max: Math.max(...v) };
}

export function formatStats(xs: (number | null)[], digits = 2): string {
  const s = stats(xs);
  if (s.n === 0) return "—";
  if (s.n === 1) return `${s.mean.toFixed(digits)} (1 seed)`;
  return `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)} (${s.n} seeds, ${s.min.toFixed(digits)}–${
    s.max.toFixed(digits)
  })`;
}

/** "mean (n)" over the finished seeds, or "—": the README's short form of formatStats. */
function meanSeeds(xs: (number | null)[], digits = 2): string {
  const s = stats(xs);
  return s.n === 0 ? "—" : `${s.mean.toFixed(digits)} (${s.n})`;
}

/** The verdict of a paired comparison: the paper's order in every seed, the opposite in every seed, or mixed. */
export function pairVerdict(better: (number | null)[], worse: (number | null)[], runs: number): string {
  const pairs = better.map((b, i) => [b, worse[i]]).filter(([b, w]) =>
    b !== null && w !== null
  ) as number[][];
  const finished = [...better, ...worse].filter((x) => x !== null).length;
  if (finished < runs) return `pending (${finished} of ${runs} runs finished)`;
  const d = pairs.map(([b, w]) => b - w);
  const seedsNote = pairs.length === 1 ? " (1 seed)" : "";
  if (d.every((x) => x > 0)) return `shown${seedsNote}`;
  if (d.every((x) => x < 0)) return `not shown: the opposite in every seed${seedsNote}`;
  return "inconclusive: the seeds disagree";
}

/** Claim (g)'s thresholds on the tokens' cosine: apart below the first, close above the second, distinct below the third. */
const TOKENS_APART = 0.3, TOKENS_CLOSE = 0.7, TOKENS_SAME = 0.99;

/** Claim (g): class/distillation token cosine, input → after the last block, per seed of the DeiT⚗ students. */
export async function tokenClaim(root: string, images = 256) {
  const input: (number | null)[] = [], output: (number | null)[] = [];
  let seconds = 0;
  for (const dir of seeds("claims-distill", "token")) {
    const run = await readRun(`${root}/${dir}`);
    seconds += run?.seconds ?? 0;
    if (!run?.done) {
      input.push(null);
      output.push(null);
      continue;
    }
    const { model } = await loadRunModel(`${root}/${dir}`);
    const batch = await evalBatch(await runTestSet(run), run.derived.img_size, images);
    try {
      const s = await tokenSimilarity(model as VisionTransformer, batch.x);
      input.push(s.input);
      output.push(s.blocks[s.blocks.length - 1]);
    } finally {
      tf.dispose(batch.x);
      model.dispose();
    }
  }
  return { input, output, seconds };
}

/** results/claims: one row per claim. */
export async function claimsTable(root: string): Promise<ResultTable> {
  const rows: Record<string, Cell>[] = [];
  const time = async (dirs: string[]) => {
    let s = 0;
    for (const d of dirs) s += (await readRun(`${root}/${d}`))?.seconds ?? 0;
    return s;
  };
  for (const c of CLAIMS) {
    const b = await armResult(root, c.better), w = await armResult(root, c.worse);
    const d = b.acc.map((x, i) => (x !== null && w.acc[i] !== null ? x - w.acc[i]! : null));
    let ours = `${c.better.label} ${formatStats(b.acc)}; ${c.worse.label} ${formatStats(w.acc)}; ` +
      `difference ${formatStats(d)}`;
    if (c.id === "a") {
      const gap = (r: ArmResult) =>
        formatStats(r.trainAcc.map((t, i) => (t !== null && r.acc[i] !== null ? t - r.acc[i]! : null)));
      ours += `; train − test top-1: ${c.better.label} ${gap(b)}, ${c.worse.label} ${gap(w)}`;
      const microD = await armResult(root, { label: "DeiT", runs: seeds("claims", "deit") });
      const microP = await armResult(root, { label: "plain", runs: seeds("claims", "plain") });
      ours +=
        `. deit_micro, 10k × 100 epochs: DeiT ${formatStats(microD.acc)} vs plain ${
          formatStats(microP.acc)
        } ` +
        `(${pairVerdict(microD.acc, microP.acc, 6)})`;
      const full = await armResult(root, { label: "DeiT recipe", runs: ["headline/fmnist-deit"] });
      const plain = await armResult(root, { label: "plain", runs: ["headline/fmnist-vit-plain"] });
      const result = (r: ArmResult) => (r.done ? formatStats(r.acc) : "not finished yet");
      ours += `. All 60k images × 100 epochs (deit_mini_patch4_28, 1 seed): DeiT ${result(full)} vs plain ${
        result(plain)
      }`;
      if (full.done && plain.done) {
        // One seed of ~9 h a run: beside the verdict, not part of it.
        const d = full.acc[0]! - plain.acc[0]!;
        ours += `, difference ${d > 0 ? "+" : ""}${d.toFixed(2)} (one seed: not counted in the verdict)`;
      }
    }
    ours += plateauNote(b, w);
    const refs = [];
    for (const ref of c.references ?? []) {
      refs.push(`${ref.label} ${formatStats((await armResult(root, ref)).acc)}`);
    }
    if (refs.length) ours += `; for scale: ${refs.join("; ")}`;
    const verdict = pairVerdict(b.acc, w.acc, c.better.runs.length + c.worse.runs.length);
    const short = `${c.better.label} ${meanSeeds(b.acc)} vs ${c.worse.label} ${meanSeeds(w.acc)}`;
    if (c.id === "d") {
      const match = await readMatch(root);
      ours += match ? `; teachers ${match}` : "; teachers not matched yet";
    }
    rows.push({
      claim: c.claim,
      paper: c.paper,
      experiment: c.experiment,
      ours,
      short,
      verdict,
      machine_time: fmtSeconds(b.seconds + w.seconds + (c.alsoRuns ? await time(c.alsoRuns) : 0), "words"),
      change: c.change,
    });
  }
  const g = await tokenClaim(root);
  const gDone = g.output.filter((x) => x !== null).length;
  // Apart at the input, close but distinct after the last block, in every seed.
  const gShown = g.input.every((x, i) =>
    x !== null && x < TOKENS_APART && g.output[i]! > TOKENS_CLOSE && g.output[i]! < TOKENS_SAME
  );
  rows.push({
    claim: "(g) the class and distillation tokens start apart and converge, but stay distinct",
    paper: "cosine 0.06 at the input → 0.93 after the last layer (DeiT-B⚗)",
    experiment: "claims-distill/token-sN: cosine of the two tokens on 256 test images, before block 1 and " +
      `after the last block; shown when every seed is below ${TOKENS_APART} at the input and between ` +
      `${TOKENS_CLOSE} and ${TOKENS_SAME} after the last block`,
    ours: `input ${formatStats(g.input, 3)} → last block ${formatStats(g.output, 3)}`,
    short: `cosine ${meanSeeds(g.input, 3)} at the input → ${meanSeeds(g.output, 3)} after the last block`,
    verdict: gDone < SEEDS.length
      ? `pending (${gDone} of ${SEEDS.length} runs finished)`
      : gShown
      ? "shown"
      : "not shown",
    machine_time: "(the runs of (c))",
    change: "the control we did not run: a second class token trained on the labels instead of the teacher " +
      "(the paper: the two then converge to cosine 0.999)",
  });
  return {
    name: "claims",
    title: "The paper's claims, tested at this machine's scale",
    intro: [
      "Each claim of the DeiT paper beside an experiment here that could show it: matched budgets, runs to the " +
      "end of their schedule, the regime the claim is about, 3 seeds where two arms could differ by less than 3 " +
      "points (configs/grids/claims.ts, claims-distill.ts; configs/fmnist-claims.ts). Seeds pair the arms (same " +
      "initialisation, augmentation and batch order; the 10k-image subset is fixed). Top-1 is on the 10,000 " +
      "Fashion-MNIST test images (the 500 digits test images for (e)) after the last epoch.",
      "Verdict: shown = the paper's order holds in every seed; not shown = the opposite holds in every seed; " +
      "inconclusive = the seeds disagree; pending = a run is unfinished. Machine time is the sum of the runs' " +
      "epoch times (2-core machine, runs two at a time; the convnet teacher's logits are computed by the first " +
      "student of a seed and read back by the others, teacher_cache).",
    ],
    columns: [
      { key: "claim", title: "claim" },
      { key: "paper", title: "paper" },
      { key: "experiment", title: "our experiment" },
      { key: "ours", title: "ours (test top-1 %)" },
      { key: "verdict", title: "verdict" },
      { key: "machine_time", title: "machine time" },
      { key: "change", title: "what would change it" },
    ],
    rows,
    notes: [
      "Figure: `figures/claims.svg` — each seed's difference (the paper's better arm minus the other) beside " +
      "the paper's difference, per comparison.",
    ],
  };
}

/** The README's claims block: its first and last lines. */
export const README_BEGIN =
  "<!-- claims: written by `deno task reproduce` from results/claims.json; edit lib/report/claims.ts, not this -->";
export const README_END = "<!-- /claims -->";

/**
 * The README's short table of the claims (claim, paper, ours in short, verdict), between README_BEGIN and
 * README_END, from results/claims.json's rows: the README says what the file says, and nothing stronger.
 */
export function readmeClaimsBlock(rows: Record<string, Cell>[]): string {
  const cell = (v: Cell) => String(v ?? "—");
  const table = markdownTable(
    ["claim", "paper", "ours (mean test top-1 %, seeds finished)", "verdict"],
    rows.map((r) => [cell(r.claim), cell(r.paper), cell(r.short), cell(r.verdict)]),
  );
  return `${README_BEGIN}\n\n${table}\n\n${README_END}`;
}

/** Where `readme`'s claims block starts and ends; throws when the markers are missing or repeated. */
function blockSpan(readme: string): [number, number] {
  const begin = readme.indexOf(README_BEGIN), end = readme.indexOf(README_END);
  if (begin < 0 || end < begin || readme.indexOf(README_BEGIN, begin + 1) >= 0) {
    throw new Error(`README.md needs exactly one claims block (${README_BEGIN} … ${README_END})`);
  }
  return [begin, end + README_END.length];
}

/** `readme` with its claims block replaced by `block`. */
export function withClaimsBlock(readme: string, block: string): string {
  const [begin, end] = blockSpan(readme);
  return readme.slice(0, begin) + block + readme.slice(end);
}

/**
 * The cells of `readme`'s claims block, row by row, as text (padding and the separator's width dropped, so that
 * a block laid out by `deno fmt` compares equal to the one readmeClaimsBlock wrote).
 */
export function claimsBlockCells(readme: string): string[][] {
  const [begin, end] = blockSpan(readme);
  return readme.slice(begin, end).split("\n").filter((l) => l.startsWith("|")).map((l) =>
    l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()).map((c) => (/^:?-+:?$/.test(c) ? "---" : c))
  );
}

/** The comparisons the claims figure draws: each claim's pair, and (a)'s two other pairs. */
function figurePairs(): { row: string; better: Arm; worse: Arm; paperDiff: number }[] {
  const c = Object.fromEntries(CLAIMS.map((x) => [x.id, x]));
  const pair = (id: string, row: string) => ({ row, ...c[id] });
  return [
    pair("a", "(a) DeiT − plain recipe: 2,500 images"),
    {
      row: "(a) the same: deit_micro, 10k images",
      better: { label: "DeiT", runs: seeds("claims", "deit") },
      worse: { label: "plain", runs: seeds("claims", "plain") },
      paperDiff: c.a.paperDiff,
    },
    {
      row: "(a) the same: all 60k images",
      better: { label: "DeiT", runs: ["headline/fmnist-deit"] },
      worse: { label: "plain", runs: ["headline/fmnist-vit-plain"] },
      paperDiff: c.a.paperDiff,
    },
    pair("b", "(b) hard − soft distillation"),
    pair("c", "(c) distillation token − class token"),
    pair("d", "(d) convnet − transformer teacher"),
    pair("e", "(e) fine-tuned − from scratch (digits)"),
    pair("f", "(f) +10 epochs at 42 px − at 28 px"),
  ];
}

/**
 * results/figures/claims.svg: for each comparison, the difference per seed (the paper's better arm minus the
 * other) beside the paper's difference; a row with no finished pair yet says "(pending)".
 */
export async function claimsFigure(root: string): Promise<Figure> {
  const diffs: Difference[] = [], refs: { row: string; value: number }[] = [];
  for (const p of figurePairs()) {
    const b = await armResult(root, p.better), w = await armResult(root, p.worse);
    const pairs = b.acc.flatMap((x, i) => (x !== null && w.acc[i] !== null ? [{ i, d: x - w.acc[i]! }] : []));
    const n = p.better.runs.length;
    const row = pairs.length === n
      ? p.row
      : pairs.length
      ? `${p.row} (${pairs.length} of ${n} seeds)`
      : `${p.row} (pending)`;
    for (const { i, d } of pairs) diffs.push({ row, pair: `seed ${i}`, value: d });
    refs.push({ row, value: p.paperDiff });
  }
  return differenceChart(diffs, refs, {
    x: "difference in test top-1 (points; > 0: the paper's order)",
    title: "The paper's claims here: each seed's difference, and the paper's",
    refLabel: "paper",
  });
}

async function readMatch(root: string): Promise<string | null> {
  try {
    const j = JSON.parse(await Deno.readTextFile(repoPath(root, "claims/teacher-regnet/teacher-match.json")));
    return (j.teachers as { dir: string; epoch: number; acc1: number }[])
      .map((t) => `${t.dir.split("/").pop()} ${t.acc1.toFixed(2)} (after ${t.epoch} epochs)`)
      .join(", ") + `, gap ${j.gap.toFixed(2)}`;
  } catch {
    return null;
  }
}

/** Markdown of the claims rows whose id is in `ids` (e.g. ["a"]), worded as results/claims.md words them. */
export async function conclusions(root: string, ids: string[], table?: ResultTable): Promise<string> {
  const t = table ?? await claimsTable(root);
  const rows = t.rows.filter((r) => ids.some((id) => String(r.claim).startsWith(`(${id})`)));
  return rows.map((r) =>
    `- **${r.claim}** — verdict: **${r.verdict}**. Ours: ${r.ours}. Paper: ${r.paper}. ` +
    `Experiment: ${r.experiment}. What would change it: ${r.change}.`
  ).join("\n") + "\n\n(The same rows as `results/claims.md`.)";
}

export interface SetupRow {
  what: string;
  model: string;
  images: string;
  epochs: number | string;
  steps: number | string;
  lr: string;
  warmup: number | string;
  ema: string;
  seeds: number | string;
}

/** The paper's DeiT-B run as a setup row (Table 9 recipe on ImageNet-1k). */
export const PAPER_SETUP: SetupRow = {
  what: "paper: DeiT-B",
  model: "deit_base_patch16_224 (86.6 M)",
  images: "1,281,167 (ImageNet-1k)",
  epochs: 300,
  steps: "375,300 (batch 1024)",
  lr: "1e-3 (5e-4 × 1024/512)",
  warmup: 5,
  ema: "kept, not evaluated",
  seeds: 1,
};

/** A setup row from a grid's runs of one arm (the first run's config; seeds = runs that exist). */
export async function setupRow(root: string, what: string, dirs: string[]): Promise<SetupRow> {
  const runs = (await Promise.all(dirs.map((d) => readRun(`${root}/${d}`)))).filter((r) => r !== null);
  const r = runs[0];
  if (!r) {
    return {
      what,
      model: "—",
      images: "—",
      epochs: "—",
      steps: "—",
      lr: "—",
      warmup: "—",
      ema: "—",
      seeds: 0,
    };
  }
  const c = r.config, d = r.derived;
  return {
    what,
    model: c.model,
    images: d.train_images.toLocaleString("en"),
    epochs: c.epochs,
    steps: `${(d.steps_per_epoch * c.epochs).toLocaleString("en")} (batch ${c.batch_size})`,
    lr: d.lr.toExponential(1),
    warmup: c.warmup_epochs,
    ema: c.ema ? `on (${c.ema_decay})` : "off",
    seeds: runs.length,
  };
}

/** The setup rows beside the paper's, as a table for a notebook. */
export function setupTable(rows: SetupRow[]): ResultTable {
  return {
    name: "setup",
    title: "Setup here vs the paper",
    intro: [],
    columns: ["what", "model", "images", "epochs", "steps", "lr", "warmup", "ema", "seeds"].map((k) => ({
      key: k,
      title: k === "lr" ? "peak lr" : k === "warmup" ? "warm-up epochs" : k === "ema" ? "EMA" : k,
      digits: 0,
    })),
    rows: [PAPER_SETUP, ...rows] as unknown as Record<string, Cell>[],
    notes: [],
  };
}
