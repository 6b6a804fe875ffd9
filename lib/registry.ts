/**
 * Every model this project can build, as one data table.
 *
 * DeiT rows: the paper's Table 1 (dim / heads / depth, V100 throughput, ImageNet top-1) and the release's
 * checkpoint names. Small rows: the shapes of the reference fixtures, used by the tests and the examples.
 */
import { countParams, type ViTConfig, vitConfig, vitGFlops, vitParamShapes } from "./vit/config.ts";
import { VisionTransformer } from "./vit/model.ts";

export interface PaperFigures {
  /** ImageNet-1k top-1 (%) reported in the paper. */
  top1: number;
  /** Throughput on one 16 GB V100 (images/s), Table 1. */
  v100ImagesPerS?: number;
  /** File name of the official checkpoint. */
  checkpoint?: string;
}

export interface ModelEntry {
  family: "vit";
  /** Differences from `VIT_DEFAULTS`. */
  config: Partial<ViTConfig>;
  paper?: PaperFigures;
  /** One line on what the row is. */
  note?: string;
}

const tiny = { embedDim: 192, numHeads: 3, depth: 12 };
const small = { embedDim: 384, numHeads: 6, depth: 12 };
const base = { embedDim: 768, numHeads: 12, depth: 12 };
/** timm's DeiT constructors register drop_path 0 for eval; the training configs set 0.1. */
/** The small DeiT for 28×28 Fashion-MNIST runs on CPU: patch 4 (a 7×7 grid), head dim 32. */
const mini28 = { imgSize: 28, patchSize: 4, embedDim: 96, depth: 6, numHeads: 3, numClasses: 10 };
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
  // The reference fixtures' shapes (shared/fixtures/reference/vit_mini*.safetensors).
  vit_mini_patch8_32: { family: "vit", config: fixtureShape, note: "reference fixture shape" },
  deit_mini_distilled_patch8_32: {
    family: "vit",
    config: { ...fixtureShape, distilled: true },
    note: "reference fixture shape",
  },
} satisfies Record<string, ModelEntry>;

export type ModelName = keyof typeof MODELS;

export function modelNames(): string[] {
  return Object.keys(MODELS);
}

export function getEntry(name: string): ModelEntry {
  const e = (MODELS as Record<string, ModelEntry>)[name];
  if (!e) {
    throw new Error(`unknown model '${name}'; registered: ${modelNames().join(", ")}`);
  }
  return e;
}

/** The full config of a registered model, with overrides (e.g. numClasses for fine-tuning). */
export function modelConfig(name: string, overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ ...getEntry(name).config, ...overrides });
}

export interface ModelSummary {
  name: string;
  params: number;
  gflops: number;
  img_size: number;
  paper_top1: number | null;
}

export function summarize(name: string): ModelSummary {
  const e = getEntry(name);
  const c = vitConfig(e.config);
  return {
    name,
    params: countParams(vitParamShapes(c)),
    gflops: vitGFlops(c),
    img_size: c.imgSize,
    paper_top1: e.paper?.top1 ?? null,
  };
}

/** A registered model, freshly initialised (seeded), with config overrides (e.g. numClasses, dropPathRate). */
export function buildModel(name: string, overrides: Partial<ViTConfig> = {}, seed = 0): VisionTransformer {
  return new VisionTransformer(modelConfig(name, overrides), { seed });
}
