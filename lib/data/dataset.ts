/**
 * The data interfaces shared by every dataset, transform and loader of the training pipeline.
 *
 * Images travel as 8-bit RGB, row-major HWC (what sharp decodes to and what the augmentations work on) until
 * normalisation turns them into float32 HWC, the layout the model takes (NHWC batches). Every problem with the
 * data is a {@link DataError} naming the file.
 */

/** A data set or image that cannot be read: the message names the path and the problem. */
export class DataError extends Error {
  override name = "DataError";
  /** The file or folder the error is about ("<bytes>" for an in-memory image), when there is one. */
  readonly path?: string;

  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.path = options?.path;
  }
}

/** An 8-bit image, HWC row-major. Training images are always 3 channels (grey data is replicated). */
export interface ImageU8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
}

/** A float32 image, HWC row-major (after normalisation). */
export interface ImageF32 {
  data: Float32Array;
  width: number;
  height: number;
  channels: 3;
}

export interface Sample {
  image: ImageU8;
  /** Class index. */
  label: number;
}

/** An image file and its class, as the eval loader takes them (`scanImageFolder`'s samples fit). */
export interface LoadableSample {
  path: string;
  target: number;
}

/** A labelled image collection: one split of one dataset. */
export interface Dataset {
  /** e.g. "fashion-mnist/train". */
  readonly name: string;
  /** Class names; a label is an index into this list. */
  readonly classes: readonly string[];
  readonly length: number;
  /** Decode sample `i` (0 ≤ i < length). Errors name the file. */
  get(i: number): Promise<Sample>;
  /** Labels of all samples without decoding images, where cheap (for samplers and statistics). */
  labels?(): Promise<Int32Array>;
}

/** What a file-system entry is, for messages: "a FIFO", "a socket", "a folder", … (null: a regular file). */
export function notRegularKind(info: Deno.FileInfo): string | null {
  if (info.isFile) return null;
  if (info.isDirectory) return "a folder";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  return "a special file";
}

/**
 * Reads a whole regular file. The path is checked with `stat` (which follows symlinks) before it is opened, so a
 * FIFO, socket or device under a data file's name is refused with the reason instead of blocking the read
 * forever (opening a FIFO waits for a writer) or streaming a device.
 *
 * @throws DataError "cannot read <what> <path>: <reason>" (reason "no such file", "it is a FIFO (named pipe),
 *   not a regular file", or the system's message).
 */
export async function readRegularFile(path: string, what: string): Promise<Uint8Array> {
  try {
    const kind = notRegularKind(await Deno.stat(path));
    if (kind) {
      throw new DataError(`cannot read ${what} ${path}: it is ${kind}, not a regular file`, {
        path,
      });
    }
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof DataError) throw e;
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new DataError(`cannot read ${what} ${path}: ${reason}`, { path, cause: e });
  }
}
