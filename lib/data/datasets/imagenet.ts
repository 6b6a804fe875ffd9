/** ImageNet-style folders: `root/train/<class>/…`, `root/val/<class>/…`, each split a torchvision ImageFolder. */
import { DataError } from "../dataset.ts";
import { scanImageFolder } from "../imagefolder.ts";
import { FileDataset, statOrNull } from "./common.ts";

export interface ImageFolderOptions {
  /** Sub-folder of `dir` to read ("train", "val", …); without it `dir` itself is the ImageFolder. */
  split?: string;
}

/**
 * One split of an ImageNet-layout folder, scanned with {@link scanImageFolder} (torchvision's class order and
 * sample order). Images are decoded on `get` with `decodeRgb`.
 *
 * @throws DataError naming the folder when `dir` or `dir/<split>` does not exist, or the scan fails (no class
 *   folders, empty classes).
 */
export async function imageFolderDataset(dir: string, opts: ImageFolderOptions = {}): Promise<FileDataset> {
  const base = dir.replace(/\/+$/, "") || "/";
  const { split } = opts;
  let folder = base;
  if (split !== undefined) {
    if (split === "" || split.includes("/") || split === "." || split === "..") {
      throw new DataError(
        `imagefolder: bad split name "${split}" (expected a sub-folder name such as train or val)`,
      );
    }
    folder = `${base}/${split}`;
    const info = await statOrNull(folder);
    if (!info?.isDirectory) {
      const why = (await statOrNull(base)) ? `has no "${split}" split folder` : "does not exist";
      throw new DataError(
        `imagefolder: ${base} ${why} (expected ${folder}/<class>/<image>)`,
        { path: folder },
      );
    }
  }
  const scan = await scanImageFolder(folder);
  const label = split ?? scan.root.split("/").pop() ?? "";
  return new FileDataset(`imagefolder/${label}`, scan.classes, scan.samples);
}
