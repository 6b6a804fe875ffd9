/**
 * PyTorch (timm) weight layout ↔ this project's layout.
 *
 * Linear weights: timm `[out, in]` ↔ ours `[in, out]`, so the forward pass is `x·W` with no transpose.
 * Patch embedding: timm's conv `[D, C, p, p]` ↔ ours `[p·p·C, D]`, rows ordered (ph, pw, c) to match how
 * `patchEmbed` flattens an NHWC patch. Everything else is stored as timm stores it.
 */
import { hwioToOihw, oihwToHwio, transpose2d } from "../io/layout.ts";

const PATCH = "patch_embed.proj.weight";

function isLinearWeight(name: string, torchShape: readonly number[]): boolean {
  return name.endsWith(".weight") && torchShape.length === 2;
}

export function internalShape(name: string, torchShape: readonly number[]): number[] {
  if (name === PATCH) {
    const [D, C, ph, pw] = torchShape;
    return [ph * pw * C, D];
  }
  if (isLinearWeight(name, torchShape)) return [torchShape[1], torchShape[0]];
  return [...torchShape];
}

/** Reorders `data` (row-major, torch layout `torchShape`) into the internal layout. */
export function toInternal(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  // [D, C, p, p] → [p, p, C, D], which flattened is [p·p·C, D] with rows in (ph, pw, c) order.
  if (name === PATCH) return oihwToHwio(data, torchShape);
  if (isLinearWeight(name, torchShape)) return transpose2d(data, torchShape[0], torchShape[1]);
  return data;
}

/** Inverse of `toInternal`: internal data → torch layout `torchShape`. */
export function toTorch(name: string, torchShape: readonly number[], data: Float32Array): Float32Array {
  if (name === PATCH) return hwioToOihw(data, torchShape);
  if (isLinearWeight(name, torchShape)) return transpose2d(data, torchShape[1], torchShape[0]);
  return data;
}
