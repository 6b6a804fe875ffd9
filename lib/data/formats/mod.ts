/**
 * File-format readers for the datasets: IDX (MNIST / Fashion-MNIST, ./idx.ts) and MATLAB Level 5 MAT-files
 * (the Flowers-102 and Stanford Cars annotations, ./matlab.ts). Each reports a file it cannot read as a
 * DataError naming it.
 */
export * from "./idx.ts";
export * from "./matlab.ts";
