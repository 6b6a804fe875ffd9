/**
 * One entry point for weight files: picks the reader by the file's first bytes, not its extension, so a
 * renamed file still loads and a wrong one fails with a message that says what it is.
 */

import { isPicklePrefix, LEGACY_FORMAT_MESSAGE, parsePth } from "./pth.ts";
import { parseSafetensors } from "./safetensors.ts";
import { CheckpointError, displayPath, readCheckpointBytes, type StateDict } from "./tensor.ts";

export interface CheckpointFile {
  /** the weights, in file order. */
  stateDict: StateDict;
  /** for .pth: the other plain top-level values (e.g. `epoch`); {} for safetensors. */
  extra: Record<string, unknown>;
  format: "pth" | "safetensors";
  /** for safetensors: the header's `__metadata__`; {} for .pth. */
  metadata: Record<string, string>;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04]; // "PK\x03\x04"

/** A safetensors file starts with its header length and then the JSON header's "{". */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  return bytes.length > 8 && bytes[8] === 0x7b;
}

/**
 * Reads a checkpoint: a torch.save zip (.pth, e.g. the official DeiT releases) or a safetensors file.
 * Throws CheckpointError naming the path for a missing, unrecognized, legacy-format or damaged file.
 */
export async function readCheckpointFile(path: string | URL): Promise<CheckpointFile> {
  const bytes = await readCheckpointBytes(path);
  const name = displayPath(path);
  if (ZIP_MAGIC.every((b, i) => bytes[i] === b)) {
    const { stateDict, extra } = parsePth(bytes, name);
    return { stateDict, extra, format: "pth", metadata: {} };
  }
  // A safetensors header length can begin with the bytes 0x80 0x02 too (0x280 = 640), hence the "{" test.
  if (isPicklePrefix(bytes) && !looksLikeSafetensors(bytes)) {
    throw new CheckpointError(`${name}: ${LEGACY_FORMAT_MESSAGE}`);
  }
  if (!looksLikeSafetensors(bytes)) {
    throw new CheckpointError(
      `${name}: unrecognized checkpoint format (${
        bytes.length === 0 ? "empty file" : "neither a PyTorch zip " +
          "checkpoint nor safetensors"
      })`,
    );
  }
  const { tensors, metadata } = parseSafetensors(bytes, name);
  return { stateDict: tensors, extra: {}, format: "safetensors", metadata };
}
