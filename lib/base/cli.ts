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

/** Errors of bad input (a flag, a config, a file, the data) that a script reports as one line, exit code 2. */
const EXPECTED = [
  "UsageError",
  "CheckpointError",
  "DataError",
  "OutOfMemoryError",
  "ConfigError",
  "TrainingError",
  "DivergedError",
  "RunNotFoundError",
  "TeacherMatchError",
];

/**
 * File-system errors (a path that does not exist, is not a folder, cannot be written, a full disk): their
 * message names the operation and the path, e.g. "No such file or directory (os error 2): open '/x/p.jsonl'".
 */
const FS_ERRORS = [
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.AlreadyExists,
  Deno.errors.NotADirectory,
  Deno.errors.IsADirectory,
  Deno.errors.NotCapable,
  Deno.errors.FilesystemLoop,
];

/** Is this an error of bad input or of the file system (a one-line message) rather than a bug (a stack)? */
export function isExpectedError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return EXPECTED.includes(e.name) || FS_ERRORS.some((c) => c && e instanceof c) ||
    /\(os error \d+\)/.test(e.message) ||
    e.message.startsWith("unknown model") || e.message.startsWith("backend ") ||
    e.message.startsWith("unknown backend");
}

/**
 * Run a script's main, printing expected errors (bad input, a file that cannot be read or written) as one clear
 * line and exit code 2 instead of a stack; anything else is a bug: its stack, exit code 1. `DEIT_TRACE=1` prints
 * the stack of every error.
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const expected = isExpectedError(err);
    let trace = false;
    try {
      trace = Deno.env.get("DEIT_TRACE") === "1";
    } catch { /* no env permission */ }
    console.error(`error: ${expected && !trace ? err.message : err.stack}`);
    Deno.exit(expected ? 2 : 1);
  }
}
