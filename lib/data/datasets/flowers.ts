/**
 * Oxford Flowers-102 (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/), the official files:
 *   - `jpg/image_00001.jpg` … `jpg/image_08189.jpg` (from `102flowers.tgz`);
 *   - `imagelabels.mat`: variable `labels`, 1×8189, the 1-based class of image k at position k;
 *   - `setid.mat`: variables `trnid` (1,020), `valid` (1,020), `tstid` (6,149), 1-based image ids.
 *
 * The dataset ships no class names: class c (0-based) is named by its official 1-based label, `String(c + 1)`.
 * DeiT's transfer experiments train on train + val (2,040 images, the "trainval" split here) and test on "test".
 * Samples are listed in the order of the ids in `setid.mat` (as torchvision's `Flowers102`).
 */
import { DataError, type LoadableSample } from "../dataset.ts";
import { matNumbers, matVariable, readMat } from "../formats/matlab.ts";
import { checkSplit, FileDataset, findRoot } from "./common.ts";

export type FlowersSplit = "train" | "val" | "test" | "trainval";
export const FLOWERS_SPLITS: readonly FlowersSplit[] = ["train", "val", "test", "trainval"];

const SPLIT_VARIABLES: Record<FlowersSplit, string[]> = {
  train: ["trnid"],
  val: ["valid"],
  test: ["tstid"],
  trainval: ["trnid", "valid"],
};

/**
 * One split of Flowers-102. Images are decoded on `get`.
 *
 * @param dir the folder holding `jpg/`, `imagelabels.mat` and `setid.mat` (or a folder holding `flowers-102/`,
 *   torchvision's layout).
 * @throws DataError naming the file when a .mat file is missing, corrupt or inconsistent.
 */
export async function flowers102(split: FlowersSplit, dir: string): Promise<FileDataset> {
  checkSplit("flowers102", split, FLOWERS_SPLITS);
  const root = await findRoot(dir, "imagelabels.mat", ["flowers-102"], "Flowers-102");
  const labelsFile = `${root}/imagelabels.mat`;
  const setFile = `${root}/setid.mat`;
  const labels = matNumbers(
    matVariable(await readMat(labelsFile), "labels", labelsFile),
    "labels",
    labelsFile,
  );
  let numClasses = 0;
  labels.forEach((l, k) => {
    if (!Number.isInteger(l) || l < 1) {
      throw new DataError(`${labelsFile}: labels(${k + 1}) = ${l} is not a 1-based class`, {
        path: labelsFile,
      });
    }
    numClasses = Math.max(numClasses, l);
  });
  const sets = await readMat(setFile);
  const samples: LoadableSample[] = [];
  for (const v of SPLIT_VARIABLES[split]) {
    const ids = matNumbers(matVariable(sets, v, setFile), v, setFile);
    ids.forEach((id, k) => {
      if (!Number.isInteger(id) || id < 1 || id > labels.length) {
        throw new DataError(
          `${setFile}: ${v}(${
            k + 1
          }) = ${id} is not an image id in 1..${labels.length} (the length of labels)`,
          { path: setFile },
        );
      }
      samples.push({
        path: `${root}/jpg/image_${String(id).padStart(5, "0")}.jpg`,
        target: labels[id - 1] - 1,
      });
    });
  }
  const classes = Array.from({ length: numClasses }, (_, c) => String(c + 1));
  return new FileDataset(`flowers102/${split}`, classes, samples);
}
