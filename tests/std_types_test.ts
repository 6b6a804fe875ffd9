/**
 * `@std/assert`, `@std/cli` and `@std/text` map to deno-std's npm JavaScript, which has no declarations; the
 * ones in types/ (attached by deno.json's `compilerOptions.types`) make `deno check` check their use. A small
 * file with deliberate mistakes must fail to check, naming each mistake; the same calls used correctly pass.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fromFileUrl } from "../lib/base/paths.ts";

const CONFIG = fromFileUrl(new URL("../deno.json", import.meta.url));

/** `deno check` of `source` (written to a temporary file) with the repository's config. */
async function check(source: string): Promise<{ code: number; output: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/probe.ts`;
    await Deno.writeTextFile(file, source);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", CONFIG, file],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const IMPORTS = [
  `import { assertEquals, assertThrows } from "@std/assert";`,
  `import { parseArgs } from "@std/cli";`,
  `import { levenshteinDistance } from "@std/text";`,
];

Deno.test("std imports are type-checked: mistakes fail deno check, correct use passes", async () => {
  const mistakes = [
    `assertEquals(1, "one");`,
    `const n: number = parseArgs(["--x", "a"], { string: ["x"] }).x;`,
    `const b: string = parseArgs(["--json"], { boolean: ["json"] }).json;`,
    `const d: string = levenshteinDistance("a", "b");`,
    `assertThrows(() => {}, "message", "not an error class");`,
  ];
  const bad = await check([...IMPORTS, ...mistakes].join("\n"));
  assert(bad.code !== 0, `deno check passed a file with type errors:\n${bad.output}`);
  for (let i = 0; i < mistakes.length; i++) {
    assertStringIncludes(bad.output, `probe.ts:${IMPORTS.length + i + 1}:`, `no error for ${mistakes[i]}`);
  }
  assertStringIncludes(bad.output, `Found ${mistakes.length} errors`);

  const good = await check([
    ...IMPORTS,
    `assertEquals(1, 1);`,
    `const x: string | undefined = parseArgs(["--x", "a"], { string: ["x"] }).x;`,
    `const json: boolean = parseArgs(["--json"], { boolean: ["json"] }).json;`,
    `const d: number = levenshteinDistance("kitten", "sitting");`,
    `const e: SyntaxError = assertThrows(() => JSON.parse("{"), SyntaxError);`,
    `console.log(x, json, d, e);`,
  ].join("\n"));
  assertEquals(good.code, 0, good.output);
});
