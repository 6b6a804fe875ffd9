/**
 * An augmentation Worker for lib/data/train_loader.ts: builds the training transform from the plain config it
 * is sent, then transforms one decoded image per "job" message with `new Rng(seed)` and sends the float32 result
 * back (transferred, not copied).
 */
/// <reference lib="deno.worker" />
import { Rng } from "../base/rng.ts";
import { buildTrainTransform, type TrainTransform, type TrainTransformConfig } from "./transforms/train.ts";

/** Messages to an augmentation Worker. */
export type AugmentRequest =
  | { type: "init"; config: TrainTransformConfig }
  | { type: "job"; id: number; seed: number; width: number; height: number; data: Uint8Array };

/** Messages from an augmentation Worker. */
export type AugmentReply =
  | { type: "done"; id: number; width: number; height: number; data: Float32Array }
  | { type: "error"; id: number; message: string };

let transform: TrainTransform | null = null;

function post(reply: AugmentReply, transfer: Transferable[] = []): void {
  self.postMessage(reply, transfer);
}

self.onmessage = async (e: MessageEvent<AugmentRequest>) => {
  const msg = e.data;
  if (msg.type === "init") {
    transform = buildTrainTransform(msg.config);
    return;
  }
  try {
    if (!transform) throw new Error("augmentation worker: job before init");
    const out = await transform(
      { data: msg.data, width: msg.width, height: msg.height, channels: 3 },
      new Rng(msg.seed),
    );
    post({ type: "done", id: msg.id, width: out.width, height: out.height, data: out.data }, [
      out.data.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    post({ type: "error", id: msg.id, message: (err as Error).stack ?? String(err) });
  }
};
