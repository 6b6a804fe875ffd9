/**
 * `deno task models [--json]`: every registered model with its parameter count, GFLOPs (multiply-adds, as the
 * paper counts them) at its resolution, and the paper's ImageNet top-1.
 */
import { parseArgs } from "@std/cli";
import { modelNames, summarize } from "../lib/models/registry.ts";
import { formatTable } from "../lib/base/text_table.ts";

const args = parseArgs(Deno.args, { boolean: ["json", "help"] });
if (args.help) {
  console.log("usage: deno task models [--json]");
  Deno.exit(0);
}
const rows = modelNames().map(summarize);
if (args.json) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  console.log(formatTable(
    ["model", "params", "GFLOPs", "img", "paper top-1"],
    rows.map((r) => [
      r.name,
      r.params.toLocaleString("en-US"),
      r.gflops.toFixed(2),
      String(r.img_size),
      r.paper_top1 === null ? "—" : r.paper_top1.toFixed(1),
    ]),
  ));
}
