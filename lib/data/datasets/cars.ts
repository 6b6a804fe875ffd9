/**
 * Stanford Cars (196 classes; 8,144 train / 8,041 test images), the official files:
 *   - `cars_train/00001.jpg` …, `cars_test/00001.jpg` …;
 *   - `devkit/cars_train_annos.mat`: struct array `annotations` with fields bbox_x1, bbox_y1, bbox_x2, bbox_y2,
 *     class (1-based) and fname (the image's file name);
 *   - `devkit/cars_meta.mat`: cell array `class_names` (196 strings);
 *   - `cars_test_annos_withlabels.mat` (published separately; the devkit's `cars_test_annos.mat` has no class):
 *     the same struct for the test images. Looked for in the data folder and in `devkit/`.
 * Samples follow the order of the annotation struct (as torchvision's `StanfordCars`); images are not cropped
 * to their boxes (DeiT fine-tunes on whole images), the boxes are available in {@link CarsDataset.boxes}.
 */
import { DataError, type LoadableSample } from "../dataset.ts";
import { matNumbers, matString, matStrings, type MatValue, matVariable, readMat } from "../formats/matlab.ts";
import { checkSplit, FileDataset, findRoot, statOrNull } from "./common.ts";

export class CarsDataset extends FileDataset {
  constructor(
    name: string,
    classes: readonly string[],
    samples: readonly LoadableSample[],
    /** [n, 4]: bbox_x1, bbox_y1, bbox_x2, bbox_y2 of each sample, in the annotation's 1-based pixel units. */
    readonly boxes: Float64Array,
  ) {
    super(name, classes, samples);
  }
}

function scalar(v: MatValue, what: string, file: string): number {
  const d = matNumbers(v, what, file);
  if (d.length !== 1) {
    throw new DataError(`${file}: ${what} has ${d.length} values, expected 1`, { path: file });
  }
  return d[0];
}

/**
 * One split of Stanford Cars. Images are decoded on `get`.
 *
 * @param dir the folder holding `cars_train/`, `cars_test/` and `devkit/` (or a folder holding `stanford_cars/`,
 *   torchvision's layout).
 * @throws DataError naming the file when an annotation file is missing, corrupt or inconsistent.
 */
export async function stanfordCars(split: "train" | "test", dir: string): Promise<CarsDataset> {
  checkSplit("cars", split, ["train", "test"] as const);
  const root = await findRoot(dir, "devkit", ["stanford_cars"], "Stanford Cars");
  const metaFile = `${root}/devkit/cars_meta.mat`;
  const classes = matStrings(
    matVariable(await readMat(metaFile), "class_names", metaFile),
    "class_names",
    metaFile,
  );

  let annosFile = `${root}/devkit/cars_train_annos.mat`;
  if (split === "test") {
    const candidates = [
      `${root}/cars_test_annos_withlabels.mat`,
      `${root}/devkit/cars_test_annos_withlabels.mat`,
    ];
    const found: string[] = [];
    for (const c of candidates) if (await statOrNull(c)) found.push(c);
    if (found.length === 0) {
      throw new DataError(
        `Stanford Cars test labels not found: no ${
          candidates.join(" or ")
        } (the devkit's cars_test_annos.mat ` +
          `has no classes; cars_test_annos_withlabels.mat is published separately)`,
        { path: candidates[0] },
      );
    }
    annosFile = found[0];
  }
  const annos = matVariable(await readMat(annosFile), "annotations", annosFile);
  if (annos.kind !== "struct") {
    throw new DataError(`${annosFile}: annotations is a ${annos.kind} array, expected a struct array`, {
      path: annosFile,
    });
  }
  for (const f of ["class", "fname"]) {
    if (!annos.fields.includes(f)) {
      throw new DataError(
        `${annosFile}: annotations has no field '${f}' (fields: ${annos.fields.join(", ")})`,
        {
          path: annosFile,
        },
      );
    }
  }
  const boxFields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"];
  const hasBoxes = boxFields.every((f) => annos.fields.includes(f));
  const boxes = new Float64Array(annos.elements.length * 4).fill(NaN);
  const samples = annos.elements.map((e, i): LoadableSample => {
    const cls = scalar(e.class, `annotations(${i + 1}).class`, annosFile);
    if (!Number.isInteger(cls) || cls < 1 || cls > classes.length) {
      throw new DataError(
        `${annosFile}: annotations(${
          i + 1
        }).class = ${cls} is not a class in 1..${classes.length} (${metaFile})`,
        { path: annosFile },
      );
    }
    if (hasBoxes) {
      boxFields.forEach((f, k) => boxes[i * 4 + k] = scalar(e[f], `annotations(${i + 1}).${f}`, annosFile));
    }
    const fname = matString(e.fname, `annotations(${i + 1}).fname`, annosFile);
    return { path: `${root}/cars_${split}/${fname}`, target: cls - 1 };
  });
  return new CarsDataset(`cars/${split}`, classes, samples, boxes);
}
