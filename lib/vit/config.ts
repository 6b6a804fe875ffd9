/**
 * ViT / DeiT shapes: the config type, the variant table (DeiT Table 1), parameter shapes and FLOP counts.
 *
 * The parameter shapes here are the single source of truth: the model creates its weights from them, the
 * checkpoint loader checks files against them, and `deno task models` counts them.
 */

export interface ViTConfig {
  /** Input resolution (square), e.g. 224. */
  imgSize: number;
  /** Patch side, e.g. 16; imgSize must be a multiple. */
  patchSize: number;
  /** Input channels (3). */
  inChans: number;
  /** Classes of `head` (and `head_dist`); 0 means no head (features only). */
  numClasses: number;
  /** Token width D. */
  embedDim: number;
  depth: number;
  numHeads: number;
  /** MLP hidden width = mlpRatio · D. */
  mlpRatio: number;
  qkvBias: boolean;
  /** Adds the distillation token and `head_dist` (DeiT⚗). */
  distilled: boolean;
  /** Stochastic depth: rate rises linearly from 0 to this over the blocks (DeiT: 0.1). */
  dropPathRate: number;
  /** Dropout after the position embedding, attention projection and MLP layers (DeiT: 0). */
  dropRate: number;
  /** LayerNorm epsilon (timm ViT: 1e-6). */
  layerNormEps: number;
}

export const VIT_DEFAULTS: ViTConfig = {
  imgSize: 224,
  patchSize: 16,
  inChans: 3,
  numClasses: 1000,
  embedDim: 768,
  depth: 12,
  numHeads: 12,
  mlpRatio: 4,
  qkvBias: true,
  distilled: false,
  dropPathRate: 0,
  dropRate: 0,
  layerNormEps: 1e-6,
};

/** A complete config from a partial one; checks that the shape is consistent. */
export function vitConfig(partial: Partial<ViTConfig>): ViTConfig {
  const c = { ...VIT_DEFAULTS, ...partial };
  const bad = (msg: string) => {
    throw new Error(`invalid ViT config: ${msg}`);
  };
  for (const k of ["imgSize", "patchSize", "inChans", "embedDim", "depth", "numHeads"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (!Number.isInteger(c.numClasses) || c.numClasses < 0) bad(`numClasses must be ≥ 0, got ${c.numClasses}`);
  if (c.imgSize % c.patchSize !== 0) {
    bad(`imgSize ${c.imgSize} is not a multiple of patchSize ${c.patchSize}`);
  }
  if (c.embedDim % c.numHeads !== 0) bad(`embedDim ${c.embedDim} is not divisible by numHeads ${c.numHeads}`);
  if (!(c.dropPathRate >= 0 && c.dropPathRate < 1)) {
    bad(`dropPathRate must be in [0, 1), got ${c.dropPathRate}`);
  }
  if (!(c.dropRate >= 0 && c.dropRate < 1)) bad(`dropRate must be in [0, 1), got ${c.dropRate}`);
  if (!Number.isInteger(c.embedDim * c.mlpRatio)) bad(`embedDim·mlpRatio must be an integer`);
  return c;
}

/** Grid side (patches per row) and token counts. */
export function tokenCounts(c: ViTConfig): { grid: number; patches: number; prefix: number; tokens: number } {
  const grid = c.imgSize / c.patchSize;
  const prefix = c.distilled ? 2 : 1;
  return { grid, patches: grid * grid, prefix, tokens: grid * grid + prefix };
}

/**
 * Parameter names (timm's state-dict keys) and their shapes **as timm stores them** (PyTorch layout:
 * Linear `[out, in]`, conv `[out, in, kh, kw]`), in timm's registration order.
 */
export function vitParamShapes(c: ViTConfig): Map<string, number[]> {
  const D = c.embedDim, H = c.embedDim * c.mlpRatio, p = c.patchSize;
  const { tokens } = tokenCounts(c);
  const s = new Map<string, number[]>();
  s.set("cls_token", [1, 1, D]);
  if (c.distilled) s.set("dist_token", [1, 1, D]);
  s.set("pos_embed", [1, tokens, D]);
  s.set("patch_embed.proj.weight", [D, c.inChans, p, p]);
  s.set("patch_embed.proj.bias", [D]);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}.`;
    s.set(b + "norm1.weight", [D]);
    s.set(b + "norm1.bias", [D]);
    s.set(b + "attn.qkv.weight", [3 * D, D]);
    if (c.qkvBias) s.set(b + "attn.qkv.bias", [3 * D]);
    s.set(b + "attn.proj.weight", [D, D]);
    s.set(b + "attn.proj.bias", [D]);
    s.set(b + "norm2.weight", [D]);
    s.set(b + "norm2.bias", [D]);
    s.set(b + "mlp.fc1.weight", [H, D]);
    s.set(b + "mlp.fc1.bias", [H]);
    s.set(b + "mlp.fc2.weight", [D, H]);
    s.set(b + "mlp.fc2.bias", [D]);
  }
  s.set("norm.weight", [D]);
  s.set("norm.bias", [D]);
  if (c.numClasses > 0) {
    s.set("head.weight", [c.numClasses, D]);
    s.set("head.bias", [c.numClasses]);
    if (c.distilled) {
      s.set("head_dist.weight", [c.numClasses, D]);
      s.set("head_dist.bias", [c.numClasses]);
    }
  }
  return s;
}

export function countParams(shapes: Map<string, number[]>): number {
  let n = 0;
  for (const sh of shapes.values()) n += sh.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Multiply-accumulates of one forward pass, in G — what the paper and fvcore call "FLOPs" (DeiT-Ti 1.3,
 * S 4.6, B 17.6, B↑384 55.5). Counts every matmul (patch embedding, qkv, q·kᵀ, attn·v, proj, MLP, heads);
 * LayerNorm, softmax, GELU and additions are negligible and left out, as fvcore does.
 */
export function vitGFlops(c: ViTConfig): number {
  const D = c.embedDim, H = c.embedDim * c.mlpRatio;
  const { patches, tokens: T } = tokenCounts(c);
  const patchEmbed = patches * c.inChans * c.patchSize * c.patchSize * D;
  const perBlock = T * (D * 3 * D + D * D + 2 * D * H) + 2 * T * T * D;
  const heads = (c.distilled ? 2 : 1) * D * c.numClasses;
  return (patchEmbed + c.depth * perBlock + heads) / 1e9;
}
