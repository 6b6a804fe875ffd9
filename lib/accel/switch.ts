/**
 * The one switch for op implementations, set once per process (as timm's `use_fused_attn()` /
 * `set_layer_config`): the model's layers are written once, readably, and ask this switch whether to hand an
 * op to its fast implementation in `lib/accel/` or to run the readable reference in the layer itself.
 *
 * `DEIT_OPS=reference` in the environment turns the fast ops off for a whole run (and its workers, which are
 * given the parent's setting when they start).
 */
let fast = (typeof Deno === "undefined" ? undefined : Deno.env.get("DEIT_OPS")) !== "reference";

/** Use the fast op implementations (`true`, the default) or the readable reference layers (`false`). */
export function setFastOps(on: boolean): void {
  fast = on;
}

/** Whether the model's layers hand their ops to the fast implementations. */
export function fastOps(): boolean {
  return fast;
}

/** Run `fn` with the switch set to `on`, then restore it (tests and parity checks compare both paths). */
export async function withFastOps<T>(on: boolean, fn: () => T | Promise<T>): Promise<T> {
  const before = fast;
  fast = on;
  try {
    return await fn();
  } finally {
    fast = before;
  }
}
