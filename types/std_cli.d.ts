/**
 * Types for `@std/cli`, which deno.json maps to `npm:deno-std@1.4.0/cli/parse_args.js` (plain JavaScript without
 * declarations). Loaded through deno.json's `compilerOptions.types`, like ./std_assert.d.ts (see there).
 *
 * `parseArgs` result keys are typed from the options when the flag names are literals
 * (`parseArgs(args, { boolean: ["json"] }).json` is a boolean, a `string` flag is `string | undefined`); any
 * other key is `unknown`, so a flag's value has to be checked or converted before use.
 */
declare module "@std/cli" {
  export interface ParseOptions<B extends string = string, S extends string = string> {
    /** Flags that are booleans (`true`: every flag without a value). */
    boolean?: readonly B[] | true;
    /** Flags whose value is always kept as a string. */
    string?: readonly S[];
    /** Flags that may repeat, collected into arrays. */
    collect?: readonly string[];
    /** Flags that `--no-<flag>` sets to false. */
    negatable?: readonly string[];
    /** Other names of a flag. */
    alias?: Readonly<Record<string, string | readonly string[]>>;
    /** Values of flags that are not given. */
    default?: Readonly<Record<string, unknown>>;
    /** Put everything after the first positional argument in `_`. */
    stopEarly?: boolean;
    /** Put the arguments after `--` in `["--"]` rather than `_`. */
    "--"?: boolean;
    /** Called for each flag not named in the options; returning false leaves it out of the result. */
    unknown?: (arg: string, key?: string, value?: unknown) => unknown;
  }

  /** `parseArgs`' result: typed keys for literal `boolean` / `string` flag names, `unknown` for the rest. */
  export type Args<B extends string = string, S extends string = string> =
    & (string extends B ? unknown : { [K in B]: boolean })
    & (string extends S ? unknown : { [K in S]?: string })
    & {
      /** Positional arguments (numbers where they parse as numbers, unless named in `string`). */
      _: Array<string | number>;
      "--"?: string[];
      [key: string]: unknown;
    };

  /** Parses command-line arguments (`Deno.args`) into flags and positional arguments. */
  export function parseArgs<B extends string = never, S extends string = never>(
    args: readonly string[],
    options?: ParseOptions<B, S>,
  ): Args<NoInfer<B>, NoInfer<S>>;
}
