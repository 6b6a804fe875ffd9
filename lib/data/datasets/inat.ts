/**
 * iNaturalist 2018 and 2019 (https://github.com/visipedia/inat_comp), the official COCO-style JSON files:
 *   - `train{year}.json`, `val{year}.json`: `images` [{id, file_name}], `annotations` [{image_id, category_id}],
 *     `categories` [{id, name, ...}];
 *   - the taxonomy (kingdom, phylum, class, order, family, genus, name) is in each category of the 2019 files;
 *     for 2018 it is in the separate `categories.json` (a list of categories with the same fields).
 * Image `file_name`s are relative to the data folder (e.g. "train_val2018/Plantae/7477/3b60c9486db1d2ee875f11a669fbde4a.jpg").
 *
 * Classes are the sorted (by code point) distinct values of the chosen taxonomy `level` over all categories,
 * so train and val agree and a level coarser than "name" merges species. (DeiT's `INatDataset` instead numbers
 * the values in order of first appearance in the train annotations; for "name" over the full train set the two
 * differ only by a permutation of the class indices.) Samples follow the order of `images`.
 */
import { DataError, type LoadableSample } from "../dataset.ts";
import { compareCodePoints } from "../imagefolder.ts";
import { checkSplit, FileDataset, readJson, statOrNull } from "./common.ts";

export const INAT_LEVELS = [
  "kingdom",
  "phylum",
  "class",
  "order",
  "family",
  "genus",
  "name",
  "supercategory",
] as const;
export type InatLevel = typeof INAT_LEVELS[number];

export interface InatOptions {
  /** Taxonomy level of the labels; default "name" (species: 8,142 classes in 2018, 1,010 in 2019). */
  level?: InatLevel;
}

type Json = Record<string, unknown>;

function listField(doc: unknown, field: string, file: string): Json[] {
  const list = (doc as Json | null)?.[field];
  if (typeof doc !== "object" || doc === null || !Array.isArray(list)) {
    throw new DataError(`${file}: no "${field}" list (not an iNaturalist annotation file?)`, { path: file });
  }
  list.forEach((e, i) => {
    if (typeof e !== "object" || e === null) {
      throw new DataError(`${file}: ${field}[${i}] is not an object`, { path: file });
    }
  });
  return list as Json[];
}

function field<T>(e: Json, key: string, type: "number" | "string", where: string, file: string): T {
  const v = e[key];
  const ok = type === "number" ? typeof v === "number" && Number.isFinite(v) : typeof v === "string";
  if (!ok) {
    throw new DataError(`${file}: ${where}.${key} is ${JSON.stringify(v)}, expected a ${type}`, {
      path: file,
    });
  }
  return v as T;
}

/**
 * One split of iNaturalist 2018 or 2019. Images are decoded on `get`.
 *
 * @param dir the folder holding the JSON files; image paths are `dir/<file_name>`.
 * @throws DataError naming the file when a JSON file is missing or invalid, an image has no annotation, or a
 *   category lacks the requested level.
 */
export async function inaturalist(
  year: 2018 | 2019,
  split: "train" | "val",
  dir: string,
  opts: InatOptions = {},
): Promise<FileDataset> {
  const dataset = `inat${year}`;
  if (year !== 2018 && year !== 2019) {
    throw new DataError(`iNaturalist year must be 2018 or 2019, got ${year}`);
  }
  checkSplit(dataset, split, ["train", "val"] as const);
  const level = opts.level ?? "name";
  if (!INAT_LEVELS.includes(level)) {
    throw new DataError(`iNaturalist level "${level}" is not one of ${INAT_LEVELS.join(", ")}`);
  }
  const root = dir.replace(/\/+$/, "") || "/";
  if (!(await statOrNull(root))) {
    throw new DataError(`${dataset}: data folder ${root} does not exist`, { path: root });
  }
  const splitFile = `${root}/${split}${year}.json`;
  const doc = await readJson(splitFile, `iNaturalist ${year} ${split} annotations`);
  const images = listField(doc, "images", splitFile);
  const annotations = listField(doc, "annotations", splitFile);

  // The taxonomy: 2018 keeps it in categories.json, 2019 in the split file; take the first that has `level`.
  const catsFile = `${root}/categories.json`;
  const haveCatsFile = (await statOrNull(catsFile)) !== null;
  const order = year === 2018 ? [catsFile, splitFile] : [splitFile, catsFile];
  let categories: Json[] | undefined;
  let catsFrom = "";
  for (const file of order) {
    if (file === catsFile && !haveCatsFile) continue;
    if (file === splitFile && !Array.isArray((doc as Json).categories)) continue;
    const cats = file === catsFile
      ? listField({ categories: await readJson(catsFile, "iNaturalist categories") }, "categories", catsFile)
      : listField(doc, "categories", splitFile);
    if (cats.length > 0 && cats.every((c) => c[level] !== undefined)) {
      categories = cats;
      catsFrom = file;
      break;
    }
  }
  if (!categories) {
    const missing = haveCatsFile ? "" : ` (${catsFile} does not exist)`;
    throw new DataError(
      `${dataset}: no category list with a "${level}" field for every category in ${
        order.join(" or ")
      }${missing}`,
      { path: order[0] },
    );
  }

  const valueOf = new Map<number, string>();
  categories.forEach((c, i) => {
    valueOf.set(field<number>(c, "id", "number", `categories[${i}]`, catsFrom), String(c[level]));
  });
  const classes = [...new Set(valueOf.values())].sort(compareCodePoints);
  const index = new Map(classes.map((c, i) => [c, i]));

  const categoryOf = new Map<number, number>();
  annotations.forEach((a, i) => {
    const img = field<number>(a, "image_id", "number", `annotations[${i}]`, splitFile);
    if (!categoryOf.has(img)) {
      categoryOf.set(img, field<number>(a, "category_id", "number", `annotations[${i}]`, splitFile));
    }
  });
  const samples = images.map((im, i): LoadableSample => {
    const id = field<number>(im, "id", "number", `images[${i}]`, splitFile);
    const file = field<string>(im, "file_name", "string", `images[${i}]`, splitFile);
    const cat = categoryOf.get(id);
    if (cat === undefined) {
      throw new DataError(`${splitFile}: image ${id} (${file}) has no annotation`, { path: splitFile });
    }
    const value = valueOf.get(cat);
    if (value === undefined) {
      throw new DataError(`${splitFile}: image ${id} (${file}) has category ${cat}, not in ${catsFrom}`, {
        path: splitFile,
      });
    }
    return { path: `${root}/${file}`, target: index.get(value)! };
  });
  return new FileDataset(`${dataset}/${split}`, classes, samples);
}
