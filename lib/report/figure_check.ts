/**
 * Does a figure draw outside its canvas? An SVG viewer clips whatever lies beyond the root element's width and
 * height (and each nested <svg> clips its own content), so a label that is too long is silently cut off. Here
 * the figure is rendered (sharp, librsvg) inside a larger white canvas with every <svg> set to overflow, and
 * the ink that lands in the border around the original canvas is counted, side by side.
 */
import sharp from "sharp";

export interface Overflow {
  left: number;
  right: number;
  top: number;
  bottom: number;
  /** Width and height of the figure's canvas. */
  width: number;
  height: number;
}

/** Pixels of ink (any channel darker than 200) outside the canvas, per side. */
export async function overflowOf(svg: string, margin = 300): Promise<Overflow> {
  const root = svg.match(/<svg\b[^>]*>/)?.[0] ?? "";
  const width = Number(root.match(/\bwidth="([\d.]+)"/)?.[1]);
  const height = Number(root.match(/\bheight="([\d.]+)"/)?.[1]);
  if (!(width > 0 && height > 0)) throw new Error("the SVG's root element has no width and height");
  const open = svg.replace(/<svg\b(?![^>]*\boverflow=)/g, '<svg overflow="visible"');
  const W = Math.ceil(width) + 2 * margin, H = Math.ceil(height) + 2 * margin;
  const framed = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">` +
    `<rect width="100%" height="100%" fill="white"/><g transform="translate(${margin},${margin})">` +
    open.slice(open.indexOf("<svg")) + "</g></svg>";
  const { data, info } = await sharp(new TextEncoder().encode(framed)).flatten({ background: "#ffffff" })
    .raw().toBuffer({ resolveWithObject: true });
  const out: Overflow = { left: 0, right: 0, top: 0, bottom: 0, width, height };
  const c = info.channels;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const i = (y * info.width + x) * c;
      if (data[i] > 200 && data[i + 1] > 200 && data[i + 2] > 200) continue;
      if (x < margin) out.left++;
      else if (x >= margin + width) out.right++;
      else if (y < margin) out.top++;
      else if (y >= margin + height) out.bottom++;
    }
  }
  return out;
}

/** "right 120 px of ink" for the sides that overflow; "" when nothing does. */
export function describeOverflow(o: Overflow): string {
  return (["left", "right", "top", "bottom"] as const).filter((s) => o[s] > 0).map((s) => `${s} ${o[s]} px`)
    .join(", ");
}
