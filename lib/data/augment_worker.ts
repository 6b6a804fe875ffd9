/**
 * An augmentation Worker for lib/data/train_loader.ts: builds the training transform from the plain config it
 * is sent, then transforms one decoded image per "job" message with `new Rng(seed)` and sends the float32 result
 * back (transferred, not copied).
 */
/// <reference lib="deno.worker" />
import { Rng } from "../base/rng.ts";
import { buildTrainTransform, type TrainTransform } from "./transforms/train.ts";
import type { AugmentReply, AugmentRequest } from "./train_loader.ts";

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
