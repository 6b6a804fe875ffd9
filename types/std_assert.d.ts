/**
 * Types for `@std/assert`, which deno.json maps to `npm:deno-std@1.4.0/assert/mod.js`: plain JavaScript without
 * declarations, so without this file every assertion is `any` and `deno check` accepts `assertEquals(1, "one")`.
 *
 * deno.json's `compilerOptions.types` loads this file; its `declare module "@std/assert"` types the bare
 * specifier (TypeScript consults an ambient module declaration before the file the specifier resolves to), so
 * the imports stay `import { assertEquals } from "@std/assert"` and no import needs a `// @ts-types` comment.
 * The signatures are those of JSR's `@std/assert` 1.x for the functions this project uses (and a few neighbours):
 * switching the import map to `jsr:@std/assert` keeps everything checking; drop this file from
 * `compilerOptions.types` then to get JSR's complete declarations.
 */
declare module "@std/assert" {
  /** Thrown by every failed assertion. */
  export class AssertionError extends Error {
    constructor(message: string, options?: ErrorOptions);
  }

  /** A constructor of errors, as `assertThrows` / `assertRejects` take it (abstract classes too). */
  // deno-lint-ignore no-explicit-any
  type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

  /** Asserts that `expr` is truthy (narrows it). */
  export function assert(expr: unknown, msg?: string): asserts expr;
  /** Asserts that `expr` is falsy (narrows it). */
  export function assertFalse(expr: unknown, msg?: string): asserts expr is
    | false
    | 0
    | 0n
    | ""
    | null
    | undefined;
  /** Asserts that `actual` is neither null nor undefined (narrows it). */
  export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T>;
  /** Deep equality (structures, typed arrays, Maps, Sets, Dates...). */
  export function assertEquals<T>(actual: T, expected: T, msg?: string): void;
  /** Deep inequality. */
  export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void;
  /** `Object.is` equality. */
  export function assertStrictEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T;
  /** `|actual - expected| <= tolerance` (default 1e-7 of `expected`'s magnitude). */
  export function assertAlmostEquals(
    actual: number,
    expected: number,
    tolerance?: number,
    msg?: string,
  ): void;
  /** Asserts that `actual` is an instance of `expectedType` (narrows it). */
  // deno-lint-ignore no-explicit-any
  export function assertInstanceOf<T extends abstract new (...args: any[]) => any>(
    actual: unknown,
    expectedType: T,
    msg?: string,
  ): asserts actual is InstanceType<T>;
  /** Asserts that `actual` matches `expected`. */
  export function assertMatch(actual: string, expected: RegExp, msg?: string): void;
  /** Asserts that `actual` contains `expected`. */
  export function assertStringIncludes(actual: string, expected: string, msg?: string): void;
  /** Asserts that `fn` throws; returns what it threw. */
  export function assertThrows(fn: () => unknown, msg?: string): unknown;
  /** Asserts that `fn` throws an `ErrorClass` whose message includes `msgIncludes`; returns the error. */
  export function assertThrows<E extends Error = Error>(
    fn: () => unknown,
    ErrorClass: ErrorClass<E>,
    msgIncludes?: string,
    msg?: string,
  ): E;
  /** Asserts that the promise `fn` returns rejects; resolves to the rejection reason. */
  export function assertRejects(fn: () => PromiseLike<unknown>, msg?: string): Promise<unknown>;
  /** Asserts that the promise `fn` returns rejects with an `ErrorClass` whose message includes `msgIncludes`. */
  export function assertRejects<E extends Error = Error>(
    fn: () => PromiseLike<unknown>,
    ErrorClass: ErrorClass<E>,
    msgIncludes?: string,
    msg?: string,
  ): Promise<E>;
  /** Always throws an AssertionError. */
  export function fail(msg?: string): never;
  /** Marks code that must not run: always throws an AssertionError. */
  export function unreachable(msg?: string): never;
}
