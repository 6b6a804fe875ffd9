/** Command-line parsing shared by the scripts: @std/cli with unknown flags refused and clear usage errors. */
import { parseArgs } from "@std/cli";

export class UsageError extends Error {
  override name = "UsageError";
}

export interface FlagSpec {
  string?: string[];
  boolean?: string[];
  default?: Record<string, unknown>;
}

/** Parse `args`; any flag not in the spec (or a stray positional argument) is a UsageError. */
export function parseFlags(args: string[], spec: FlagSpec, usage: string): Record<string, unknown> {
  const known = new Set([...(spec.string ?? []), ...(spec.boolean ?? []), "help"]);
  const bad: string[] = [];
  const parsed = parseArgs(args, {
    string: spec.string,
    boolean: [...(spec.boolean ?? []), "help"],
    default: spec.default,
    unknown: (arg: string, key?: string) => {
      if (key === undefined || !known.has(key)) bad.push(arg);
      return false;
    },
  });
  if (parsed.help) {
    console.log(usage);
    Deno.exit(0);
  }
  if (bad.length > 0) throw new UsageError(`unknown argument ${bad.join(", ")}\n${usage}`);
  return parsed;
}

/** A positive integer flag. */
export function intFlag(v: unknown, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    throw new UsageError(`--${name} must be a positive integer, got '${v}'`);
  }
  return n;
}

/** Run a script's main, printing expected errors (bad input) as one clear line instead of a stack. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const err = e as Error;
    const expected =
      ["UsageError", "CheckpointError", "DataError", "OutOfMemoryError", "ConfigError", "TrainingError"]
        .includes(err.name) ||
      err.message.startsWith("unknown model") || err.message.startsWith("backend ") ||
      err.message.startsWith("unknown backend");
    console.error(`error: ${expected ? err.message : err.stack}`);
    Deno.exit(expected ? 2 : 1);
  }
}
