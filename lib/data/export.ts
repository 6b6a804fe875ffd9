/**
 * Writes in-memory grey images (e.g. Fashion-MNIST) as an ImageFolder of PNGs, so that the same evaluation
 * path that reads an ImageNet val folder can be exercised on data this machine has.
 */
import sharp from "sharp";
import type { GreyImages } from "./formats/idx.ts";

/**
 * Write the first `count` images as `dir/<class>/<index>.png` (grey PNG). Idempotent: an existing folder with
 * the marker file `.complete` is left as it is. Returns the folder.
 */
export async function writeGreyImageFolder(
  src: GreyImages,
  classes: readonly string[],
  dir: string,
  count = src.n,
): Promise<string> {
  const marker = `${dir}/.complete`;
  try {
    await Deno.stat(marker);
    return dir;
  } catch { /* not written yet */ }
  const names = classes.map((c, i) => `${String(i).padStart(2, "0")}_${c.replace(/[^A-Za-z0-9-]+/g, "-")}`);
  for (const n of names) await Deno.mkdir(`${dir}/${n}`, { recursive: true });
  const px = src.h * src.w;
  for (let i = 0; i < Math.min(count, src.n); i++) {
    const raw = src.images.subarray(i * px, (i + 1) * px);
    const png = await sharp(raw, { raw: { width: src.w, height: src.h, channels: 1 } }).png().toBuffer();
    await Deno.writeFile(`${dir}/${names[src.labels[i]]}/${String(i).padStart(5, "0")}.png`, png);
  }
  await Deno.writeTextFile(marker, "");
  return dir;
}
