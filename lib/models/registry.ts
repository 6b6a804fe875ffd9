/**
 * Every model this project can build, as one data table.
 *
 * DeiT rows: the paper's Table 1 (dim / heads / depth, V100 throughput, ImageNet top-1) and the release's
 * checkpoint names. RegNetY rows: the teachers of the paper's Table 2, with the generator parameters of timm's
 * `model_cfgs` (timm/models/regnet.py, after Radosavovic et al. 2020, "Designing Network Design Spaces",
 * pycls). Small rows: the shapes of the reference fixtures, used by the tests and the examples.
 */
import { countParams, type ViTConfig, vitConfig, vitGFlops, vitParamShapes } from "../vit/config.ts";
import { VisionTransformer } from "../vit/model.ts";
import {
  RegNet,
  type RegNetConfig,
  regnetGFlops,
  regnetParamShapes,
  resolveRegNetConfig,
} from "../regnet/model.ts";

export interface PaperFigures {
  /** ImageNet-1k top-1 (%) reported in the paper. */
  top1: number;
  /** Throughput on one 16 GB V100 (images/s), Table 1. */
  v100ImagesPerS?: number;
  /** File name of the official checkpoint. */
  checkpoint?: string;
}

export type Family = "vit" | "regnet";

export interface VitEntry {
  family: "vit";
  /** Differences from `VIT_DEFAULTS`. */
  config: Partial<ViTConfig>;
  paper?: PaperFigures;
  /** One line on what the row is. */
  note?: string;
}

export interface RegNetEntry {
  family: "regnet";
  /** The generator's parameters and the rest, as differences from `REGNET_DEFAULTS`. */
  config: Partial<RegNetConfig>;
  paper?: PaperFigures;
  note?: string;
}

export type ModelEntry = VitEntry | RegNetEntry;

const tiny = { embedDim: 192, numHeads: 3, depth: 12 };
const small = { embedDim: 384, numHeads: 6, depth: 12 };
const base = { embedDim: 768, numHeads: 12, depth: 12 };
/** timm's DeiT constructors register drop_path 0 for eval; the training configs set 0.1. */
/** The small DeiT for 28×28 Fashion-MNIST runs on CPU: patch 4 (a 7×7 grid), head dim 32. */
const mini28 = { imgSize: 28, patchSize: 4, embedDim: 96, depth: 6, numHeads: 3, numClasses: 10 };
/** The walkthrough's grid scale: 7×7 patches of 28×28 (16 tokens), small enough for dozens of runs on 2 cores. */
const micro28 = { imgSize: 28, patchSize: 7, embedDim: 64, depth: 6, numHeads: 2, numClasses: 10 };
const fixtureShape = { imgSize: 32, patchSize: 8, embedDim: 48, depth: 2, numHeads: 3, numClasses: 10 };

export const MODELS = {
  // DeiT, Table 1 (Touvron et al. 2021).
  deit_tiny_patch16_224: {
    family: "vit",
    config: tiny,
    paper: { top1: 72.2, v100ImagesPerS: 2536, checkpoint: "deit_tiny_patch16_224-a1311bcf.pth" },
  },
  deit_small_patch16_224: {
    family: "vit",
    config: small,
    paper: { top1: 79.8, v100ImagesPerS: 940, checkpoint: "deit_small_patch16_224-cd65a155.pth" },
  },
  deit_base_patch16_224: {
    family: "vit",
    config: base,
    paper: { top1: 81.8, v100ImagesPerS: 292, checkpoint: "deit_base_patch16_224-b5f2ef4d.pth" },
  },
  deit_base_patch16_384: {
    family: "vit",
    config: { ...base, imgSize: 384 },
    paper: { top1: 83.1, v100ImagesPerS: 85.9, checkpoint: "deit_base_patch16_384-8de9b5d1.pth" },
  },
  deit_tiny_distilled_patch16_224: {
    family: "vit",
    config: { ...tiny, distilled: true },
    paper: { top1: 74.5, v100ImagesPerS: 2529, checkpoint: "deit_tiny_distilled_patch16_224-b40b3cf7.pth" },
  },
  deit_small_distilled_patch16_224: {
    family: "vit",
    config: { ...small, distilled: true },
    paper: { top1: 81.2, v100ImagesPerS: 936, checkpoint: "deit_small_distilled_patch16_224-649709d9.pth" },
  },
  deit_base_distilled_patch16_224: {
    family: "vit",
    config: { ...base, distilled: true },
    paper: { top1: 83.4, v100ImagesPerS: 291, checkpoint: "deit_base_distilled_patch16_224-df68dfff.pth" },
  },
  deit_base_distilled_patch16_384: {
    family: "vit",
    config: { ...base, imgSize: 384, distilled: true },
    paper: { top1: 84.5, v100ImagesPerS: 85.8, checkpoint: "deit_base_distilled_patch16_384-d0272ac0.pth" },
  },
  // Small DeiTs for the Fashion-MNIST experiments here (configs, notebooks and benchmarks share them).
  deit_mini_patch4_28: { family: "vit", config: mini28, note: "Fashion-MNIST-sized DeiT" },
  deit_mini_distilled_patch4_28: {
    family: "vit",
    config: { ...mini28, distilled: true },
    note: "Fashion-MNIST-sized DeiT⚗",
  },
  deit_micro_patch7_28: { family: "vit", config: micro28, note: "the notebooks' grid-scale DeiT" },
  deit_micro_distilled_patch7_28: {
    family: "vit",
    config: { ...micro28, distilled: true },
    note: "the notebooks' grid-scale DeiT⚗",
  },
  // The reference fixtures' shapes (shared/fixtures/reference/vit_mini*.safetensors).
  vit_mini_patch8_32: { family: "vit", config: fixtureShape, note: "reference fixture shape" },
  deit_mini_distilled_patch8_32: {
    family: "vit",
    config: { ...fixtureShape, distilled: true },
    note: "reference fixture shape",
  },
  // RegNetY (timm's model_cfgs: depth, w0, wa, wm, group size; bottleneck 1, SE 0.25, stem 32). The paper's
  // Table 2 teachers are RegNetY-4GF/8GF/12GF/16GF = regnety_040/080/120/160 (their ImageNet top-1 there).
  regnety_002: regnet({ depth: 13, w0: 24, wa: 36.44, wm: 2.49, groupSize: 8 }, "RegNetY-200MF"),
  regnety_004: regnet({ depth: 16, w0: 48, wa: 27.89, wm: 2.09, groupSize: 8 }, "RegNetY-400MF"),
  regnety_006: regnet({ depth: 15, w0: 48, wa: 32.54, wm: 2.32, groupSize: 16 }, "RegNetY-600MF"),
  regnety_008: regnet({ depth: 14, w0: 56, wa: 38.84, wm: 2.4, groupSize: 16 }, "RegNetY-800MF"),
  regnety_016: regnet({ depth: 27, w0: 48, wa: 20.71, wm: 2.65, groupSize: 24 }, "RegNetY-1.6GF"),
  regnety_032: regnet({ depth: 21, w0: 80, wa: 42.63, wm: 2.66, groupSize: 24 }, "RegNetY-3.2GF"),
  regnety_040: regnet(
    { depth: 22, w0: 96, wa: 31.41, wm: 2.24, groupSize: 64 },
    "RegNetY-4GF (Table 2 teacher)",
    {
      top1: 80.0,
    },
  ),
  regnety_064: regnet({ depth: 25, w0: 112, wa: 33.22, wm: 2.27, groupSize: 72 }, "RegNetY-6.4GF"),
  regnety_080: regnet(
    { depth: 17, w0: 192, wa: 76.82, wm: 2.19, groupSize: 56 },
    "RegNetY-8GF (Table 2 teacher)",
    {
      top1: 81.7,
    },
  ),
  regnety_120: regnet(
    { depth: 19, w0: 168, wa: 73.36, wm: 2.37, groupSize: 112 },
    "RegNetY-12GF (Table 2 teacher)",
    {
      top1: 82.4,
    },
  ),
  regnety_160: regnet(
    { depth: 18, w0: 200, wa: 106.23, wm: 2.48, groupSize: 112 },
    "RegNetY-16GF, DeiT's teacher (Table 2)",
    { top1: 82.9, checkpoint: "regnety_160-a5fe301d.pth" },
  ),
  // The reference fixture's shape (shared/fixtures/reference/regnety_mini.safetensors): stage widths 8/16/32/64.
  regnety_mini: regnet(
    { depth: 6, w0: 8, wa: 8.0, wm: 2.0, groupSize: 8, stemWidth: 8, numClasses: 10, imgSize: 32 },
    "reference fixture shape",
  ),
} satisfies Record<string, ModelEntry>;

/** A RegNetY row (SE ratio 0.25 and bottleneck ratio 1 are the defaults). */
function regnet(config: Partial<RegNetConfig>, note: string, paper?: PaperFigures): RegNetEntry {
  return { family: "regnet", config, note, ...(paper ? { paper } : {}) };
}

export type ModelName = keyof typeof MODELS;

/** Names of the rows of one family. */
type NamesOf<F extends Family> = {
  [K in ModelName]: (typeof MODELS)[K]["family"] extends F ? K : never;
}[ModelName];
export type VitName = NamesOf<"vit">;
export type RegNetName = NamesOf<"regnet">;

/** Every registered name (or those of one family), in table order. */
export function modelNames(family?: Family): string[] {
  const all = Object.entries(MODELS as Record<string, ModelEntry>);
  return all.filter(([, e]) => family === undefined || e.family === family).map(([k]) => k);
}

export function getEntry(name: string): ModelEntry {
  const e = (MODELS as Record<string, ModelEntry>)[name];
  if (!e) {
    throw new Error(`unknown model '${name}'; registered: ${modelNames().join(", ")}`);
  }
  return e;
}

/** The full config of a registered ViT, with overrides (e.g. numClasses for fine-tuning). */
export function modelConfig(name: string, overrides: Partial<ViTConfig> = {}): ViTConfig {
  const e = getEntry(name);
  if (e.family !== "vit") {
    throw new Error(`'${name}' is a ${e.family} model, not a ViT: use regnetConfig('${name}') or buildModel`);
  }
  return vitConfig({ ...e.config, ...overrides });
}

/** The full config of a registered RegNet, with overrides (e.g. numClasses). */
export function regnetConfig(name: string, overrides: Partial<RegNetConfig> = {}): RegNetConfig {
  const e = getEntry(name);
  if (e.family !== "regnet") {
    throw new Error(`'${name}' is a ${e.family} model, not a RegNet: use modelConfig('${name}')`);
  }
  return resolveRegNetConfig({ ...e.config, ...overrides });
}

export interface ModelSummary {
  name: string;
  params: number;
  /** Multiply-adds of one forward pass at img_size, in G (what the papers call FLOPs). */
  gflops: number;
  img_size: number;
  paper_top1: number | null;
}

/** Parameter count, GFLOPs and resolution of an entry, from its family's shape functions. */
function size(e: ModelEntry): { params: number; gflops: number; imgSize: number } {
  if (e.family === "regnet") {
    const c = resolveRegNetConfig(e.config);
    return { params: countParams(regnetParamShapes(c)), gflops: regnetGFlops(c), imgSize: c.imgSize };
  }
  const c = vitConfig(e.config);
  return { params: countParams(vitParamShapes(c)), gflops: vitGFlops(c), imgSize: c.imgSize };
}

export function summarize(name: string): ModelSummary {
  const e = getEntry(name);
  const { params, gflops, imgSize } = size(e);
  return { name, params, gflops, img_size: imgSize, paper_top1: e.paper?.top1 ?? null };
}

/** Any model this project builds. */
export type AnyModel = VisionTransformer | RegNet;

/**
 * A registered model, freshly initialised (seeded), with config overrides (e.g. numClasses, dropPathRate for a
 * ViT). A literal ViT name gives a `VisionTransformer`, a literal RegNet name a `RegNet`; any other string the
 * union (narrow it with `instanceof`, or use `buildVit`).
 */
export function buildModel(name: VitName, overrides?: Partial<ViTConfig>, seed?: number): VisionTransformer;
export function buildModel(name: RegNetName, overrides?: Partial<RegNetConfig>, seed?: number): RegNet;
export function buildModel(
  name: string,
  overrides?: Partial<ViTConfig> | Partial<RegNetConfig>,
  seed?: number,
): AnyModel;
export function buildModel(
  name: string,
  overrides: Partial<ViTConfig> | Partial<RegNetConfig> = {},
  seed = 0,
): AnyModel {
  const e = getEntry(name);
  if (e.family === "regnet") {
    return new RegNet(regnetConfig(name, overrides as Partial<RegNetConfig>), { seed });
  }
  return new VisionTransformer(modelConfig(name, overrides as Partial<ViTConfig>), { seed });
}

/** A registered ViT (an error for another family), for code that needs the ViT's own API. */
export function buildVit(name: string, overrides: Partial<ViTConfig> = {}, seed = 0): VisionTransformer {
  return new VisionTransformer(modelConfig(name, overrides), { seed });
}

/** A registered RegNet (an error for another family). */
export function buildRegNet(name: string, overrides: Partial<RegNetConfig> = {}, seed = 0): RegNet {
  return new RegNet(regnetConfig(name, overrides), { seed });
}

/** Input resolution and class count of a registered model (what the eval transform and a dataset need). */
export function modelIO(name: string): { imgSize: number; numClasses: number } {
  const e = getEntry(name);
  const c = e.family === "regnet" ? regnetConfig(name) : modelConfig(name);
  return { imgSize: c.imgSize, numClasses: c.numClasses };
}
