/**
 * Types for `@std/text`, which deno.json maps to `npm:deno-std@1.4.0/text/mod.js` (plain JavaScript without
 * declarations). Loaded through deno.json's `compilerOptions.types`, like ./std_assert.d.ts (see there); only the
 * string-similarity helpers.
 */
declare module "@std/text" {
  /** The Levenshtein distance (insertions, deletions, substitutions) between two strings, by code point. */
  export function levenshteinDistance(str1: string, str2: string): number;
  /**
   * The word of `possibleWords` closest to `givenWord` (Levenshtein by default, case-insensitive unless asked);
   * throws a TypeError when `possibleWords` is empty.
   */
  export function closestString(
    givenWord: string,
    possibleWords: readonly string[],
    options?: { caseSensitive?: boolean; compareFn?: (a: string, b: string) => number },
  ): string;
}
