import * as tf from "@tensorflow/tfjs";

/**
 * Run `fn` and free every tensor it created — for functions that return plain values (numbers, arrays),
 * which tf.tidy's typing does not accept. Tensors to keep must be passed through tf.keep.
 */
export function scoped<T>(fn: () => T): T {
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}
