/**
 * Position-embedding resampling for a change of resolution (DeiT's fine-tuning rule, main.py): keep the
 * prefix tokens' embeddings, reshape the grid part to its square, bicubic-interpolate it to the new grid
 * (PyTorch `F.interpolate(mode="bicubic", align_corners=False)`, no antialias) and concatenate.
 */

/** PyTorch's cubic convolution coefficient (A = −0.75; PIL uses −0.5). */
const A = -0.75;

function cubicWeights(t: number): [number, number, number, number] {
  // Keys' kernel evaluated at distances 1+t, t, 1−t, 2−t (PyTorch upsample_bicubic2d).
  const w1 = ((A + 2) * t - (A + 3)) * t * t + 1;
  const w0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  const s = 1 - t;
  const w2 = ((A + 2) * s - (A + 3)) * s * s + 1;
  const w3 = ((A * (s + 1) - 5 * A) * (s + 1) + 8 * A) * (s + 1) - 4 * A;
  return [w0, w1, w2, w3];
}

/** 1-D bicubic resampling matrix `[out, in]` with align_corners=False and edge clamping. */
function resampleMatrix(inSize: number, outSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * scale - 0.5;
    const i0 = Math.floor(src);
    const w = cubicWeights(src - i0);
    for (let k = 0; k < 4; k++) {
      const i = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[o * inSize + i] += w[k];
    }
  }
  return m;
}

/**
 * Resample a position embedding `[1, prefix + g·g, D]` to `[1, prefix + n·n, D]`.
 * @param data row-major values of the embedding
 */
export function resamplePosEmbed(
  data: Float32Array,
  prefix: number,
  oldGrid: number,
  newGrid: number,
  dim: number,
): Float32Array {
  if (data.length !== (prefix + oldGrid * oldGrid) * dim) {
    throw new Error(
      `position embedding has ${data.length} values, expected (${prefix} + ${oldGrid}²)·${dim}`,
    );
  }
  const out = new Float32Array((prefix + newGrid * newGrid) * dim);
  out.set(data.subarray(0, prefix * dim));
  if (oldGrid === newGrid) {
    out.set(data.subarray(prefix * dim), prefix * dim);
    return out;
  }
  const m = resampleMatrix(oldGrid, newGrid); // separable: rows then columns, as PyTorch computes it
  const grid = data.subarray(prefix * dim);
  // rows: [oldGrid(y), oldGrid(x), D] → [newGrid(y), oldGrid(x), D]
  const tmp = new Float64Array(newGrid * oldGrid * dim);
  for (let oy = 0; oy < newGrid; oy++) {
    for (let iy = 0; iy < oldGrid; iy++) {
      const w = m[oy * oldGrid + iy];
      if (w === 0) continue;
      for (let x = 0; x < oldGrid; x++) {
        const src = (iy * oldGrid + x) * dim, dst = (oy * oldGrid + x) * dim;
        for (let d = 0; d < dim; d++) tmp[dst + d] += w * grid[src + d];
      }
    }
  }
  for (let oy = 0; oy < newGrid; oy++) {
    for (let ox = 0; ox < newGrid; ox++) {
      const dst = (prefix + oy * newGrid + ox) * dim;
      for (let ix = 0; ix < oldGrid; ix++) {
        const w = m[ox * oldGrid + ix];
        if (w === 0) continue;
        const src = (oy * oldGrid + ix) * dim;
        for (let d = 0; d < dim; d++) out[dst + d] += w * tmp[src + d];
      }
    }
  }
  return out;
}
