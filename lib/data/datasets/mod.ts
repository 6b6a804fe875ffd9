/**
 * Dataset loaders for the paper's ImageNet training/evaluation and transfer experiments (Table 6/7), plus small
 * datasets this machine has through Debian packages. Each returns a {@link Dataset} of 8-bit RGB HWC images.
 *
 * | name          | loader                     | splits                      | storage                  |
 * |---------------|----------------------------|-----------------------------|--------------------------|
 * | imagefolder   | {@link imageFolderDataset} | any sub-folder (train, val) | files, decoded on `get`  |
 * | fashion-mnist | {@link fashionMnist}       | train, test                 | memory (IDX)             |
 * | digits        | {@link digits}             | train, test, all            | memory (sklearn CSV)     |
 * | cifar10/100   | {@link cifar}              | train, test                 | memory (official binary) |
 * | flowers102    | {@link flowers102}         | train, val, test, trainval  | files (+ .mat labels)    |
 * | cars          | {@link stanfordCars}       | train, test                 | files (+ .mat annots)    |
 * | inat2018/2019 | {@link inaturalist}        | train, val                  | files (+ JSON annots)    |
 *
 * Every problem with the data (a missing folder, split or file, a truncated or corrupt file) is a
 * {@link DataError} whose message names the file; file-backed datasets report undecodable images from `get`,
 * naming the image. The loaders live in `./`; this module re-exports them and adds {@link openDataset}.
 */
import { DataError, type Dataset } from "../dataset.ts";
import { cifar } from "./cifar.ts";
import { digits, fashionMnist } from "./grey.ts";
import { flowers102, type FlowersSplit } from "./flowers.ts";
import { stanfordCars } from "./cars.ts";
import { type InatLevel, inaturalist } from "./inat.ts";
import { imageFolderDataset } from "./imagenet.ts";
import { checkSplit } from "./common.ts";

export { DataError };
export { FileDataset, MemoryDataset, type MemoryImages } from "./common.ts";
export { cifar, CIFAR100_CLASSES, CIFAR10_CLASSES } from "./cifar.ts";
export {
  digits,
  DIGITS_CLASSES,
  DIGITS_PATH,
  DIGITS_TEST_SIZE,
  type DigitsOptions,
  fashionMnist,
} from "./grey.ts";
export { flowers102, FLOWERS_SPLITS, type FlowersSplit } from "./flowers.ts";
export { CarsDataset, stanfordCars } from "./cars.ts";
export { INAT_LEVELS, type InatLevel, type InatOptions, inaturalist } from "./inat.ts";
export { imageFolderDataset, type ImageFolderOptions } from "./imagenet.ts";

/** The names {@link openDataset} takes, and each one's splits (null: any sub-folder name). */
export const DATASET_SPLITS = {
  "imagefolder": null,
  "fashion-mnist": ["train", "test"],
  "digits": ["train", "test", "all"],
  "cifar10": ["train", "test"],
  "cifar100": ["train", "test"],
  "flowers102": ["train", "val", "test", "trainval"],
  "cars": ["train", "test"],
  "inat2018": ["train", "val"],
  "inat2019": ["train", "val"],
} as const satisfies Record<string, readonly string[] | null>;

export type DatasetName = keyof typeof DATASET_SPLITS;
export const DATASET_NAMES = Object.keys(DATASET_SPLITS) as DatasetName[];

export interface OpenDatasetOptions {
  /** iNaturalist taxonomy level (default "name"). */
  level?: InatLevel;
}

/**
 * Opens split `split` of dataset `name` (see {@link DATASET_SPLITS}) from `dir`. `dir` may be left out for
 * "fashion-mnist" and "digits" (the Debian packages' locations).
 *
 * @throws DataError for an unknown name (listing the valid ones), a split the dataset does not have, a missing
 *   `dir`, or any problem reading the data.
 */
export async function openDataset(
  name: string,
  split: string,
  dir?: string,
  opts: OpenDatasetOptions = {},
): Promise<Dataset> {
  if (!Object.hasOwn(DATASET_SPLITS, name)) {
    throw new DataError(`unknown dataset "${name}" (datasets: ${DATASET_NAMES.join(", ")})`);
  }
  const key = name as DatasetName;
  const splits = DATASET_SPLITS[key];
  if (splits !== null) checkSplit(key, split, splits);
  const needDir = (): string => {
    if (dir === undefined || dir === "") throw new DataError(`dataset "${key}" needs a data folder (dir)`);
    return dir;
  };
  switch (key) {
    case "imagefolder":
      return await imageFolderDataset(needDir(), { split });
    case "fashion-mnist":
      return await fashionMnist(split as "train" | "test", dir || undefined);
    case "digits":
      return await digits({ split: split as "train" | "test" | "all", dir: dir || undefined });
    case "cifar10":
    case "cifar100":
      return await cifar(key === "cifar10" ? 10 : 100, split as "train" | "test", needDir());
    case "flowers102":
      return await flowers102(split as FlowersSplit, needDir());
    case "cars":
      return await stanfordCars(split as "train" | "test", needDir());
    case "inat2018":
    case "inat2019":
      return await inaturalist(key === "inat2018" ? 2018 : 2019, split as "train" | "val", needDir(), {
        level: opts.level,
      });
  }
}
