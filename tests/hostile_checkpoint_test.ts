/**
 * Hostile checkpoints (issue #17): a doctored file costs seconds and megabytes, never executes anything, and is
 * never silently accepted. Every file here is written by the test itself (pickle opcodes by hand, zips by
 * tests/pth_writer.ts) and small; each is read through the loader's entry point (parseCheckpoint, what
 * `deno task eval --checkpoint`, `--finetune` and the teacher load call) in a child process with a 300 MB V8
 * heap, which reports per file the time taken and the growth of its peak resident memory (Linux: VmHWM, reset
 * between files through /proc/self/clear_refs).
 *
 * Run as a script (`deno run … hostile_checkpoint_test.ts FILE…`), this file is that child.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { loadCheckpoint, parseCheckpoint, stateDictOf } from "../lib/io/checkpoint.ts";
import { CheckpointError, type StateDict } from "../lib/io/tensor.ts";
import { buildModel } from "../lib/models/registry.ts";
import { Pickle, pthBytes, storedZip, type ZipEntry, zipRecords } from "./pth_writer.ts";
import { useBackend } from "./helpers.ts";
import { fromFileUrl } from "../lib/base/paths.ts";

// ---------------------------------------------------------------------------------------------------------
// The child: reads each file named on the command line, one JSON line per file.

function memoryMB(field: "VmHWM" | "VmRSS"): number | null {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(new RegExp(`${field}:\\s+(\\d+)`));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function resetPeak(): boolean {
  (globalThis as { gc?: () => void }).gc?.();
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  for (const file of Deno.args) {
    const bytes = Deno.readFileSync(file);
    const peakKnown = resetPeak();
    const before = memoryMB("VmRSS");
    const t0 = performance.now();
    let result: Record<string, unknown>;
    try {
      const ckpt = parseCheckpoint(bytes, file);
      result = { accepted: true, tensors: ckpt.stateDict.size };
    } catch (e) {
      result = {
        accepted: false,
        error: e instanceof Error ? e.name : typeof e,
        checkpointError: e instanceof CheckpointError,
        message: e instanceof Error ? e.message : String(e),
      };
    }
    const ms = performance.now() - t0;
    const peak = peakKnown ? memoryMB("VmHWM") : memoryMB("VmRSS");
    const grewMB = before !== null && peak !== null ? peak - before : null;
    console.log(JSON.stringify({ file, ms, grewMB, bytes: bytes.length, ...result }));
  }
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// Builders

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

/**
 * A torch.save-style checkpoint `{"model": {"w": tensor[3]}, …}` whose pickle continues with `extra` (items
 * of the top-level dict, or anything else written before its SETITEMS), and whose zip can be rewritten.
 */
function checkpoint(
  extra: (p: Pickle) => void = () => {},
  opts: { proto?: number; weights?: (p: Pickle) => void; storage?: Partial<ZipEntry> } = {},
): Uint8Array {
  const p = new Pickle(opts.proto ?? 2);
  p.emptyDict().mark();
  p.str("model").dict((q) =>
    (opts.weights ?? ((r) => r.str("w").tensor("FloatStorage", "0", 3, 0, [3], [1])))(q)
  );
  extra(p);
  p.setitems();
  return storedZip([
    { name: "archive/data.pkl", data: p.done() },
    { name: "archive/data/0", data: f32([1, 2, 3]), ...opts.storage },
    { name: "archive/version", data: new TextEncoder().encode("3\n") },
  ]);
}

/**
 * A deflate stream (one fixed-Huffman block) of `matches` × 258 zero bytes after one literal zero: 13 bits per
 * 258 bytes, so 4 MB of it inflates to ~640 MB.
 */
function zeroBomb(matches: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((3 + 8 + 13 * matches + 7) / 8) + 1);
  let bit = 0;
  const bits = (value: number, n: number) => { // LSB first
    for (let i = 0; i < n; i++, bit++) if ((value >> i) & 1) out[bit >> 3] |= 1 << (bit & 7);
  };
  const code = (value: number, n: number) => { // Huffman codes go MSB first
    for (let i = n - 1; i >= 0; i--, bit++) if ((value >> i) & 1) out[bit >> 3] |= 1 << (bit & 7);
  };
  bits(1, 1); // BFINAL
  bits(1, 2); // BTYPE 01: fixed Huffman
  code(0x30, 8); // literal 0
  for (let m = 0; m < matches; m++) {
    code(0xc5, 8); // length 258 (symbol 285)
    code(0, 5); // distance 1
  }
  code(0, 7); // end of block
  return out;
}

function safetensors(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

interface Hostile {
  file: string;
  bytes: Uint8Array;
  /** text the one-line CheckpointError must include. */
  expect: string;
}

/** Every hostile case, with the text its refusal must contain. */
function hostileCases(): Hostile[] {
  const cases: Hostile[] = [];
  const add = (file: string, bytes: Uint8Array, expect: string) => cases.push({ file, bytes, expect });

  // 1. Resource exhaustion.
  add(
    "memo_doubling.pth", // 30 levels of x = [x, x] through the memo: 2^30 items if expanded
    checkpoint((p) => {
      p.str("junk").op(0x5d).put(0);
      for (let i = 1; i <= 30; i++) {
        p.op(0x30).mark().get(i - 1).get(i - 1).op(0x6c).put(i); // POP MARK GET GET LIST PUT
      }
    }),
    "expand to more than",
  );
  add(
    "stride0_pos_embed.pth", // [65536, 65536] with strides [0, 0]: 16 GiB of float32 from 12 bytes
    checkpoint(() => {}, {
      weights: (q) => q.str("pos_embed").tensor("FloatStorage", "0", 3, 0, [65536, 65536], [0, 0]),
    }),
    "would decode to 16.0 GiB",
  );
  for (const mb of [1, 4]) {
    add(
      `long4_${mb}mb.pth`,
      checkpoint((p) => p.str("big").op(0x8b, ...u32le(mb << 20)).raw(new Uint8Array(mb << 20).fill(0x7f))),
      "an integer of",
    );
  }
  const bomb = zeroBomb(Math.floor((4 << 20) * 8 / 13)); // 4 MiB that inflate to ~660 MB
  const bombSize = 1 + 258 * Math.floor((4 << 20) * 8 / 13);
  add(
    "zip_bomb.pth", // declares what it really inflates to: refused before inflating
    checkpoint(() => {}, { storage: { deflated: bomb, size: bombSize, crc: 0 } }),
    "more than a",
  );
  add(
    "zip_bomb_lying.pth", // declares 12 bytes: inflating stops at the first excess
    checkpoint(() => {}, { storage: { deflated: bomb, size: 12 } }),
    "inflates to more than the 12 bytes it declares",
  );
  add(
    "zip_ratio.pth", // 4 GB from 4 KB: more than deflate can produce at all
    checkpoint(() => {}, { storage: { deflated: bomb.subarray(0, 4096), size: 0xfffffff0, crc: 0 } }),
    "more than deflate can produce",
  );
  add(
    "nested_lists.pth", // 1e5 nested lists: [[[…]]]
    checkpoint((p) => {
      p.str("deep");
      for (let i = 0; i < 100_000; i++) p.op(0x5d);
      for (let i = 1; i < 100_000; i++) p.op(0x61);
    }),
    "nested more than",
  );
  // Cheap opcodes, costly objects: 4 MB of EMPTY_DICT would be 4 million Maps (~900 MB), of MEMOIZE 4 million
  // memo entries, of EMPTY_LIST 4 million arrays.
  for (
    const [file, op, expect] of [
      ["many_dicts.pth", 0x7d, "dicts or sets"],
      ["many_sets.pth", 0x8f, "dicts or sets"],
      ["many_lists.pth", 0x5d, "lists, tuples or objects"],
      ["many_memo.pth", 0x94, "memoizes more than"],
    ] as const
  ) {
    add(file, checkpoint((p) => p.str("x").op(0x4e).raw(new Uint8Array(4 << 20).fill(op))), expect);
  }
  add(
    "nested_dicts.pth",
    checkpoint((p) => {
      p.str("deep");
      for (let i = 1; i < 100_000; i++) p.op(0x7d, 0x4e); // EMPTY_DICT NONE: a dict and a key
      p.op(0x7d);
      for (let i = 1; i < 100_000; i++) p.op(0x73); // SETITEM: d[None] = inner
    }),
    "nested more than",
  );

  // 2. Silently wrong weights: damaged or doctored archives.
  const good = checkpoint();
  const records = zipRecords(good);
  const at = (name: string) => records.find((r) => r.name === name)!;
  const patch = (bytes: Uint8Array, edit: (dv: DataView) => void) => {
    const out = bytes.slice();
    edit(new DataView(out.buffer));
    return out;
  };
  add(
    "cd_offset_other_entry.pth", // data/0's record points at data.pkl's local header
    patch(good, (dv) => dv.setUint32(at("archive/data/0").central + 42, at("archive/data.pkl").local, true)),
    "is not this entry's",
  );
  add(
    "cd_offset_shifted.pth",
    patch(
      good,
      (dv) => dv.setUint32(at("archive/data/0").central + 42, at("archive/data/0").local + 2, true),
    ),
    "no local header",
  );
  add(
    "cd_offset_out_of_file.pth",
    patch(good, (dv) => dv.setUint32(at("archive/data/0").central + 42, 0x7fffffff, true)),
    "no local header",
  );
  add(
    "cd_size_overlap.pth", // data.pkl claims bytes that belong to data/0
    patch(good, (dv) => {
      const c = at("archive/data.pkl").central;
      const size = dv.getUint32(c + 20, true) + 40;
      dv.setUint32(c + 20, size, true);
      dv.setUint32(c + 24, size, true);
    }),
    "overlap",
  );
  add(
    "crc_mismatch.pth", // one weight byte changed after the CRC was written
    patch(good, (dv) => dv.setUint8(at("archive/data/0").local + 30 + "archive/data/0".length, 0x99)),
    "fails its CRC-32 check",
  );
  add(
    "local_header_disagrees.pth",
    (() => {
      const zip = storedZip([
        {
          name: "archive/data.pkl",
          data: new Pickle().dict((p) => p.str("w").tensor("FloatStorage", "0", 3, 0, [3], [1])).done(),
        },
        { name: "archive/data/0", data: f32([1, 2, 3]) },
      ], { descriptor: false });
      const local = zipRecords(zip).find((r) => r.name === "archive/data/0")!.local;
      return patch(zip, (dv) => dv.setUint32(local + 14, 0x12345678, true));
    })(),
    "the local header and the central directory disagree",
  );
  add(
    "duplicate_entry.pth", // two archive/data/0: which one torch would read is not ours to guess
    (() => {
      const pkl = new Pickle().dict((p) => p.str("w").tensor("FloatStorage", "0", 3, 0, [3], [1])).done();
      return storedZip([
        { name: "archive/data.pkl", data: pkl },
        { name: "archive/data/0", data: f32([1, 2, 3]) },
        { name: "archive/data/0", data: f32([6, 6, 6]) },
      ]);
    })(),
    "two entries named archive/data/0",
  );
  add(
    "cd_count_wrong.pth",
    patch(good, (dv) => {
      const end = good.length - 22;
      dv.setUint16(end + 8, 2, true);
      dv.setUint16(end + 10, 2, true);
    }),
    "stray bytes after the central directory",
  );

  // Safetensors: overlapping or shared ranges, duplicate keys, gaps, trailing bytes.
  const data12 = f32([1, 2, 3]);
  const t = (offsets: [number, number]) => `{"dtype":"F32","shape":[3],"data_offsets":[${offsets}]}`;
  add("st_shared.safetensors", safetensors(`{"a":${t([0, 12])},"b":${t([0, 12])}}`, data12), "overlap");
  add(
    "st_overlap.safetensors",
    safetensors(`{"a":${t([0, 12])},"b":${t([8, 20])}}`, f32([1, 2, 3, 4, 5])),
    "overlap",
  );
  add(
    "st_duplicate_key.safetensors",
    safetensors(`{"a":${t([0, 12])},"a":${t([12, 24])}}`, f32([1, 2, 3, 4, 5, 6])),
    "key a appears twice",
  );
  add(
    "st_duplicate_escaped_key.safetensors",
    safetensors(`{"a":${t([0, 12])},"\\u0061":${t([12, 24])}}`, f32([1, 2, 3, 4, 5, 6])),
    "key a appears twice",
  );
  add(
    "st_duplicate_field.safetensors",
    safetensors(`{"a":{"dtype":"F32","shape":[3],"shape":[1],"data_offsets":[0,12]}}`, data12),
    "key shape appears twice",
  );
  add("st_gap.safetensors", safetensors(`{"a":${t([4, 16])}}`, f32([0, 1, 2, 3])), "unaccounted for");
  add(
    "st_trailing.safetensors",
    safetensors(`{"a":${t([0, 12])}}`, f32([1, 2, 3, 4])),
    "after the last tensor",
  );

  // 3. Globals outside the allow-list, wherever they sit.
  const refused = (qual: string) =>
    `pickle references ${qual}, which a weights file never needs; refusing to load`;
  add(
    "global_os_system.pth", // GLOBAL + REDUCE under an extra key
    checkpoint((p) => p.str("x").global("os", "system").mark().str("echo pwned").tuple().reduce()),
    refused("os.system"),
  );
  add(
    "stack_global_posix_system.pth", // protocol 4 STACK_GLOBAL
    checkpoint((p) => p.str("x").stackGlobal("posix", "system").mark().str("id").tuple().reduce(), {
      proto: 4,
    }),
    refused("posix.system"),
  );
  add(
    "inst_builtins_eval.pth", // INST
    checkpoint((p) => p.str("x").mark().str("1+1").op(0x69, "builtins\neval\n")),
    refused("builtins.eval"),
  );
  add(
    "obj_builtins_exec.pth", // OBJ
    checkpoint((p) => p.str("x").mark().global("builtins", "exec").str("1").op(0x6f)),
    refused("builtins.exec"),
  );
  add(
    "newobj_subprocess_popen.pth", // NEWOBJ
    checkpoint((p) => p.str("x").global("subprocess", "Popen").mark().str("ls").tuple().op(0x81)),
    refused("subprocess.Popen"),
  );
  add(
    "rebuild_from_type_exec.pth", // _rebuild_from_type_v2(builtins.exec, torch.Tensor, ("…",), {})
    checkpoint((p) =>
      p.str("x").global("torch._tensor", "_rebuild_from_type_v2").mark().global("builtins", "exec")
        .global("torch", "Tensor").mark().str("import os").tuple().emptyDict().tuple().reduce()
    ),
    refused("builtins.exec"),
  );
  add(
    "global_in_weights.pth", // inside the state dict itself
    checkpoint(() => {}, {
      weights: (q) => q.str("w").global("os", "system").mark().str("id").tuple().reduce(),
    }),
    refused("os.system"),
  );
  add(
    "global_unused.pth", // named but never called
    checkpoint((p) => p.str("x").global("os", "system")),
    refused("os.system"),
  );
  add(
    "ext_registry.pth",
    checkpoint((p) => p.str("x").op(0x82, 1)),
    "extension registry",
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------------------

const SELF = fromFileUrl(import.meta.url);
/** Generous bounds for a loaded 2-core machine; a case takes milliseconds when idle. */
const MAX_MS = 5000;
const MAX_GROWTH_MB = 200;

Deno.test("hostile checkpoints: each refused with a one-line CheckpointError, in bounded time and memory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile_" });
  try {
    const cases = hostileCases();
    for (const c of cases) await Deno.writeFile(`${dir}/${c.file}`, c.bytes);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A", // Deno asks for all permissions to read /proc/self/status
        "--v8-flags=--max-old-space-size=300,--expose-gc",
        SELF,
        ...cases.map((c) => `${dir}/${c.file}`),
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    });
    const out = await child.output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l.startsWith("{"));
    const results = lines.map((l) => JSON.parse(l));
    assertEquals(
      results.length,
      cases.length,
      `the child stopped after ${results.length} of ${cases.length} files (next: ${
        cases[results.length]?.file
      }): ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
    const table: string[] = [];
    for (const [i, c] of cases.entries()) {
      const r = results[i];
      const path = `${dir}/${c.file}`;
      assertEquals(r.accepted, false, `${c.file} was accepted`);
      assert(r.checkpointError, `${c.file}: ${r.error}: ${r.message}`);
      assertStringIncludes(r.message, path, c.file);
      assertStringIncludes(r.message, c.expect, c.file);
      assert(!r.message.includes("\n"), `${c.file}: the message is not one line: ${r.message}`);
      assert(
        !r.message.includes("corrupt checkpoint ("),
        `${c.file}: an unexpected error slipped through: ${r.message}`,
      );
      assert(r.ms < MAX_MS, `${c.file} took ${r.ms.toFixed(0)} ms`);
      if (r.grewMB !== null) assert(r.grewMB < MAX_GROWTH_MB, `${c.file} grew memory by ${r.grewMB} MB`);
      table.push(
        `  ${c.file.padEnd(38)} ${(c.bytes.length / 1024).toFixed(0).padStart(6)} KiB ` +
          `${r.ms.toFixed(1).padStart(7)} ms  +${(r.grewMB ?? NaN).toFixed(1).padStart(5)} MB  ` +
          r.message.slice(path.length + 2, path.length + 2 + 90),
      );
    }
    console.log(`hostile checkpoints (${cases.length}):\n${table.join("\n")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostile checkpoints: refused by loadCheckpoint into deit_micro_patch7_28, the model untouched", async () => {
  await useBackend("cpu");
  const model = buildModel("deit_micro_patch7_28");
  const before = await stateDictOf(model);
  const dir = await Deno.makeTempDir({ prefix: "hostile_" });
  try {
    for (const c of hostileCases().filter((c) => /global|stride0|memo/.test(c.file))) {
      const path = `${dir}/${c.file}`;
      await Deno.writeFile(path, c.bytes);
      const e = await assertRejects(() => loadCheckpoint(model, path), CheckpointError);
      assertStringIncludes(e.message, c.expect, c.file);
    }
    const after = await stateDictOf(model);
    for (const [k, t] of before) assertEquals(after.get(k)!.data, t.data, k);
  } finally {
    await Deno.remove(dir, { recursive: true });
    model.dispose();
  }
});

/**
 * A timm/DeiT training checkpoint of `sd` as DeiT's main.py saves it: model, model_ema, optimizer (AdamW state),
 * lr_scheduler, epoch, scaler, args (an argparse.Namespace).
 */
function timmStyle(sd: StateDict): Uint8Array {
  const storages: ZipEntry[] = [];
  const contiguous = (shape: number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return pthBytes(sd, {
    extra: (p) => {
      // model_ema: the same weights again, on storages of their own (keys 1000, 1001, …).
      p.str("model_ema").orderedDict().mark();
      let k = 1000;
      for (const [name, t] of sd) {
        p.str(name).tensor("FloatStorage", String(k), t.data.length, 0, t.shape, contiguous(t.shape));
        storages.push({
          name: `archive/data/${k++}`,
          data: new Uint8Array(Float32Array.from(t.data).buffer),
        });
      }
      p.setitems();
      // optimizer: {"state": {0: {"step": tensor, "exp_avg": …}}, "param_groups": [{"lr": …, "params": [0, …]}]}
      const first = [...sd.values()][0];
      p.str("optimizer").dict((q) => {
        q.str("state").dict((r) => {
          r.int(0).dict((s) =>
            s.str("step").tensor("FloatStorage", "2000", 1, 0, [], [])
              .str("exp_avg").tensor(
                "FloatStorage",
                "1000",
                first.data.length,
                0,
                first.shape,
                contiguous(first.shape),
              )
          );
        });
        q.str("param_groups").op(0x5d).mark().dict((r) => {
          r.str("lr").float(5e-4).str("betas").mark().float(0.9).float(0.999).tuple().str("weight_decay")
            .float(0.05);
          r.str("params").op(0x5d).mark();
          for (let i = 0; i < sd.size; i++) r.int(i);
          r.op(0x65); // APPENDS
        }).op(0x65);
      });
      storages.push({ name: "archive/data/2000", data: f32([299]) });
      p.str("lr_scheduler").dict((q) =>
        q.str("base_values").op(0x5d).float(5e-4).op(0x61).str("t_initial").int(300)
      );
      p.str("epoch").int(299);
      p.str("scaler").dict((q) =>
        q.str("scale").float(65536).str("growth_factor").float(2).str("_growth_tracker").int(0)
      );
      // args: argparse.Namespace via NEWOBJ + BUILD, as torch.save pickles it.
      p.str("args").global("argparse", "Namespace").op(0x29, 0x81).dict((q) => {
        q.str("model").str("deit_tiny_patch16_224").str("lr").float(5e-4).str("output_dir").str("/ckpt");
        q.str("input_size").int(224).str("dist_eval").op(0x88).str("teacher_path").str("");
      }).op(0x62);
    },
    entries: storages,
  });
}

Deno.test("a valid timm-style .pth (model, model_ema, optimizer, args …) of deit_micro_patch7_28 loads exactly", async () => {
  await useBackend("cpu");
  const source = buildModel("deit_micro_patch7_28");
  const sd = await stateDictOf(source);
  source.dispose();
  const bytes = timmStyle(sd);

  const ckpt = parseCheckpoint(bytes, "timm.pth");
  assertEquals([...ckpt.stateDict.keys()], [...sd.keys()]);
  for (const [key, t] of sd) {
    assertEquals(ckpt.stateDict.get(key)!.shape, t.shape, key);
    assertEquals(ckpt.stateDict.get(key)!.data, t.data, key);
  }
  assertEquals(ckpt.extra.epoch, 299);
  assertEquals(ckpt.extra.args, {
    __class__: "argparse.Namespace",
    model: "deit_tiny_patch16_224",
    lr: 5e-4,
    output_dir: "/ckpt",
    input_size: 224,
    dist_eval: true,
    teacher_path: "",
  });
  assertEquals(ckpt.extra.scaler, { scale: 65536, growth_factor: 2, _growth_tracker: 0 });
  assertEquals(ckpt.extra.lr_scheduler, { base_values: [5e-4], t_initial: 300 });
  assert(!("optimizer" in ckpt.extra) && !("model_ema" in ckpt.extra)); // they hold tensors

  const dir = await Deno.makeTempDir({ prefix: "timm_" });
  try {
    await Deno.writeFile(`${dir}/timm.pth`, bytes);
    const target = buildModel("deit_micro_patch7_28", {}, 5);
    const report = await loadCheckpoint(target, `${dir}/timm.pth`);
    assertEquals(report.loaded, sd.size);
    const back = await stateDictOf(target);
    for (const [key, t] of sd) assertEquals(back.get(key)!.data, t.data, key);
    target.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
