/**
 * DeiT's image transforms: the training transform ({@link buildTrainTransform}, ./train.ts) and the ops it is
 * built from (geometry, pixel, rand_augment, normalize, random), and the evaluation transform
 * ({@link evalTransform}, ./eval.ts). Decoding, the bicubic resizes and the normalisation table they share are
 * lib/data/image.ts's.
 */
export * from "./geometry.ts";
export * from "./pixel.ts";
export * from "./rand_augment.ts";
export * from "./normalize.ts";
export * from "./random.ts";
export * from "./train.ts";
export * from "./eval.ts";
