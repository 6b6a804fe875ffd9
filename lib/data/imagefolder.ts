/**
 * torchvision `datasets.ImageFolder` layout: `root/<class>/**\/<image>`.
 *
 * Reproduces `torchvision.datasets.folder.find_classes` + `make_dataset` so that class indices and sample order
 * match a PyTorch evaluation of the same folder exactly (DeiT evaluates ImageNet-1k val with `ImageFolder`):
 *   - classes are the sub-folder names of `root`, sorted by code point (Python's `sorted()` on `str`), and a class's
 *     index is its position in that list;
 *   - each class folder is walked recursively (`os.walk(followlinks=True)`), the folders in `sorted()` order of
 *     their full path and, inside each folder, the files in sorted name order;
 *   - a file is an image when its lower-cased name ends with one of {@link IMAGE_EXTENSIONS};
 *   - a class folder without any image is an error (torchvision raises `FileNotFoundError` unless
 *     `allow_empty=True`).
 */
import { DataError } from "./dataset.ts";

/** File extensions treated as images (compared lower-cased). torchvision also lists .ppm .bmp .pgm .tif .tiff. */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".webp"];

export interface ImageSample {
  /** Path to open: `root` + "/" + `rel`. */
  path: string;
  /** Path relative to the data set root, with forward slashes, e.g. "n01440764/ILSVRC2012_val_00000293.JPEG". */
  rel: string;
  /** Class index: position of the class folder in {@link ImageFolder.classes}. */
  target: number;
}

export interface ImageFolder {
  /** The scanned folder as an absolute path. */
  root: string;
  /** Sorted class folder names; `classes[target]` names a sample's class. */
  classes: string[];
  /** All images, grouped by class in class order, each class in `os.walk` order (see the module comment). */
  samples: ImageSample[];
}

/**
 * Compares strings by Unicode code point, like Python's `str` ordering. JavaScript's default `<` compares UTF-16
 * code units, which orders characters above U+FFFF before U+E000..U+FFFF; the two agree everywhere else.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    if (ca > 0xffff) i++; // a surrogate pair: both strings hold the same pair here
  }
  return a.length - b.length;
}

function isImageFile(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** `p` made absolute (against the working directory) with "." and ".." segments and repeated slashes removed. */
function absolutePath(p: string): string {
  const abs = p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) ? p : `${Deno.cwd()}/${p}`;
  const drive = /^[A-Za-z]:/.test(abs) ? abs.slice(0, 2) : ""; // Windows
  const parts: string[] = [];
  for (const part of abs.slice(drive.length).split(/[\\/]+/)) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return `${drive}/${parts.join("/")}`;
}

/** `Deno.DirEntry` says isSymlink for links; like Python's `entry.is_dir()`, follow them (a broken link is a file). */
async function isDirectory(path: string, entry: Deno.DirEntry): Promise<boolean> {
  if (!entry.isSymlink) return entry.isDirectory;
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function readDirSafe(path: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(path));
  } catch (e) {
    throw new DataError(`cannot list folder ${path}: ${(e as Error).message}`, { path, cause: e });
  }
}

/**
 * Image files below one class folder in torchvision's order: `sorted(os.walk(dir, followlinks=True))` visits the
 * folders sorted by full path (so "c/z.jpg" comes before "c/a/x.jpg"), and each folder's files are sorted by name.
 * Returns paths relative to `dir`'s parent, i.e. starting with the class name.
 */
async function walkClass(root: string, className: string): Promise<string[]> {
  const folders: { rel: string; files: string[] }[] = [];
  const seen = new Set<string>(); // real paths already walked: guards against symlink cycles
  const visit = async (rel: string): Promise<void> => {
    const abs = `${root}/${rel}`;
    const real = await Deno.realPath(abs).catch(() => abs);
    if (seen.has(real)) return;
    seen.add(real);
    const files: string[] = [];
    const subdirs: string[] = [];
    for (const entry of await readDirSafe(abs)) {
      if (await isDirectory(`${abs}/${entry.name}`, entry)) subdirs.push(entry.name);
      else files.push(entry.name);
    }
    folders.push({ rel, files: files.filter(isImageFile).sort(compareCodePoints) });
    for (const d of subdirs) await visit(`${rel}/${d}`);
  };
  await visit(className);
  // os.walk yields full paths "root/class/sub"; the "root/" prefix is common, so sorting `rel` gives the same order.
  folders.sort((a, b) => compareCodePoints(a.rel, b.rel));
  return folders.flatMap((f) => f.files.map((name) => `${f.rel}/${name}`));
}

/**
 * Scans `dir` as a torchvision ImageFolder.
 *
 * @throws DataError when `dir` does not exist or is not a folder, has no class sub-folders, holds no image at all
 *   ("empty"), or some class folders hold no image (torchvision's default `allow_empty=False`; the message names them).
 */
export async function scanImageFolder(dir: string): Promise<ImageFolder> {
  const root = absolutePath(dir);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(`image folder ${root} does not exist`, { path: root, cause: e });
    }
    throw new DataError(`cannot read image folder ${root}: ${(e as Error).message}`, {
      path: root,
      cause: e,
    });
  }
  if (!info.isDirectory) throw new DataError(`image folder ${root} is not a folder`, { path: root });

  const classes: string[] = [];
  for (const entry of await readDirSafe(root)) {
    if (await isDirectory(`${root}/${entry.name}`, entry)) classes.push(entry.name);
  }
  classes.sort(compareCodePoints);
  if (classes.length === 0) {
    throw new DataError(`image folder ${root} has no class sub-folders (expected ${root}/<class>/<image>)`, {
      path: root,
    });
  }

  const samples: ImageSample[] = [];
  const emptyClasses: string[] = [];
  for (const [target, name] of classes.entries()) {
    const rels = await walkClass(root, name);
    if (rels.length === 0) emptyClasses.push(name);
    for (const rel of rels) samples.push({ path: `${root}/${rel}`, rel, target });
  }
  const exts = IMAGE_EXTENSIONS.join(" ");
  if (samples.length === 0) {
    throw new DataError(
      `image folder ${root} is empty: no ${exts} files in its ${classes.length} class folders`,
      {
        path: root,
      },
    );
  }
  if (emptyClasses.length > 0) {
    const shown = emptyClasses.slice(0, 10).map((c) => `${root}/${c}`).join(", ");
    const more = emptyClasses.length > 10 ? ` and ${emptyClasses.length - 10} more` : "";
    throw new DataError(
      `image folder ${root}: no ${exts} files in class folder(s) ${shown}${more} (torchvision ImageFolder rejects empty classes)`,
      { path: `${root}/${emptyClasses[0]}` },
    );
  }
  return { root, classes, samples };
}
