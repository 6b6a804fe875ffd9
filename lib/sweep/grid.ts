/**
 * Grids: many training runs described as one base config, overrides for all of them and one row per run.
 *
 * A grid file (configs/grids/NAME.ts, default export, or a .json) lists rows; each row is one run folder
 * `<runs root>/<grid>/<row>`. A run's config is the base config file ← the grid's overrides ← the row's
 * overrides ← (smoke preset only) the grid's smoke overrides, resolved and checked like `deno task train`'s.
 * String values may say `{runs}`, replaced by the preset's runs root (a distilled row names its teacher's
 * checkpoint as `{runs}/GRID/ROW/checkpoint-best.safetensors`). Rows may need other rows (of this grid or
 * `grid/row` of another) to be done first.
 *
 * Relative run folders are relative to the repository root (the sweep starts its runs there).
 */
import { exists, REPO_ROOT, repoPath } from "../base/paths.ts";
import {
  checkPartial,
  ConfigError,
  DEFAULTS,
  importModule,
  loadConfigFile,
  resolveConfig,
  type TrainConfig,
} from "../train/config.ts";

export interface GridRow {
  /** Run id within the grid; the run folder is `<grid out>/<name>`. [a-z0-9_.-]+, unique. */
  name: string;
  /** Label for tables, e.g. "− RandAugment". */
  label?: string;
  /** Overrides on top of the grid's base config + grid overrides. Unknown keys are errors (checkPartial). */
  overrides?: Partial<TrainConfig>;
  /** Runs that must be done first: a row name of this grid, or "grid/row" of another grid. */
  needs?: string[];
  /** The paper's value for this row (top-1 %), for tables; null/absent where the paper has none. */
  paper?: number | null;
  /** false: left out of the smoke preset (e.g. the extra seeds of a row, to keep the smoke runs few). */
  smoke?: boolean;
}

/** The smoke preset's overrides the walkthrough's grids share: seconds-long runs on a few hundred images. */
export const SMOKE_RUN: Readonly<Partial<TrainConfig>> = Object.freeze({
  train_limit: 256,
  eval_limit: 128,
  epochs: 2,
  warmup_epochs: 1,
  batch_size: 64,
  loader_workers: 0,
});

export interface Grid {
  description: string;
  /** Base config: a name in configs/ or a path (as `deno task train --config`). */
  base: string;
  /** Overrides for every row. */
  overrides?: Partial<TrainConfig>;
  /** Extra overrides applied to every row in the smoke preset (tiny, seconds-long runs). */
  smoke?: Partial<TrainConfig>;
  rows: GridRow[];
}

/** A grid as loaded: its name (the file's, without extension) and path. */
export type LoadedGrid = Grid & { name: string; path: string };

export type Preset = "full" | "smoke";

/** One run of a sweep, fully resolved. */
export interface RunSpec {
  /** "grid/row". */
  id: string;
  grid: string;
  row: GridRow;
  /** The run folder (relative paths are relative to the repository root). */
  dir: string;
  config: TrainConfig;
  /** What the sweep writes to `<dir>/sweep-config.json` (and trains with). */
  configFile: { description: string; config: Partial<TrainConfig> };
  /** Ids of the runs that must be done first. */
  needs: string[];
}

/** A grid file that is wrong: unknown grid, bad row, unknown key, unknown need, cycle. */
export class GridError extends ConfigError {}

const GRIDS_DIR = `${REPO_ROOT}/configs/grids`;
const ROW_NAME = /^[a-z0-9_.-]+$/;
const GRID_NAME = /^[A-Za-z0-9_.-]+$/;

/** Where run folders live: results/runs for the full preset, .cache/smoke/runs for the smoke preset (or root). */
export function runsRoot(preset: Preset, root?: string): string {
  if (root) return root.replace(/\/+$/, "") || "/";
  return preset === "smoke" ? ".cache/smoke/runs" : "results/runs";
}

/** The grid names in configs/grids/. */
export async function listGrids(): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(GRIDS_DIR)) {
      if (e.isFile && /\.(ts|json)$/.test(e.name)) out.push(e.name.replace(/\.(ts|json)$/, ""));
    }
  } catch { /* no grids yet */ }
  return out.sort();
}

/** Load and check a grid: configs/grids/NAME.ts (or .json), or a path. */
export async function loadGrid(nameOrPath: string): Promise<LoadedGrid> {
  const isPath = nameOrPath.includes("/") || /\.(ts|json)$/.test(nameOrPath);
  let path = isPath ? (nameOrPath.startsWith("/") ? nameOrPath : `${Deno.cwd()}/${nameOrPath}`) : "";
  if (!isPath) {
    path = `${GRIDS_DIR}/${nameOrPath}.ts`;
    if (!(await exists(path)) && (await exists(`${GRIDS_DIR}/${nameOrPath}.json`))) {
      path = `${GRIDS_DIR}/${nameOrPath}.json`;
    }
  }
  if (!(await exists(path))) {
    const names = await listGrids();
    throw new GridError(
      `no grid '${nameOrPath}' (${path} does not exist); grids: ${names.join(", ") || "none"}`,
    );
  }
  let grid: Grid;
  if (path.endsWith(".json")) {
    try {
      grid = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      throw new GridError(`${path}: not valid JSON (${(e as Error).message})`);
    }
  } else {
    try {
      grid = await importModule<Grid>(path);
    } catch (e) {
      throw new GridError((e as Error).message);
    }
  }
  const name = path.replace(/^.*\//, "").replace(/\.(ts|json)$/, "");
  if (!GRID_NAME.test(name) || /^\.+$/.test(name)) {
    throw new GridError(
      `${path}: a grid's name (its file name) is letters, digits and _ . - (it names the run folders, ` +
        `Slurm jobs and scripts); got ${JSON.stringify(name)}`,
    );
  }
  checkGrid(grid, path);
  return { ...grid, name, path };
}

/** Check a grid's shape, row names, override keys and needs (local ones must exist; no cycles among rows). */
export function checkGrid(grid: Grid, path: string): void {
  if (!grid || typeof grid !== "object") throw new GridError(`${path}: exports no grid (default export)`);
  if (typeof grid.description !== "string") throw new GridError(`${path}: 'description' must be a string`);
  if (typeof grid.base !== "string" || !grid.base) {
    throw new GridError(`${path}: 'base' must name a config (configs/NAME or a path)`);
  }
  if (!Array.isArray(grid.rows) || grid.rows.length === 0) {
    throw new GridError(`${path}: 'rows' must be a non-empty list`);
  }
  const known = new Set(["description", "base", "overrides", "smoke", "rows"]);
  for (const k of Object.keys(grid)) {
    if (!known.has(k)) {
      throw new GridError(`${path}: unknown grid field '${k}' (fields: ${[...known].join(", ")})`);
    }
  }
  checkOverrides(grid.overrides, `${path}: overrides`);
  checkOverrides(grid.smoke, `${path}: smoke`);
  const names = new Set<string>();
  const rowFields = new Set(["name", "label", "overrides", "needs", "paper", "smoke"]);
  for (const [i, row] of grid.rows.entries()) {
    if (!row || typeof row.name !== "string") throw new GridError(`${path}: row ${i} has no name`);
    const where = `${path}: row '${row.name}'`;
    if (!ROW_NAME.test(row.name) || /^\.+$/.test(row.name)) {
      throw new GridError(`${where}: a row name is [a-z0-9_.-]+, not only dots`);
    }
    if (names.has(row.name)) throw new GridError(`${where}: duplicate row name`);
    names.add(row.name);
    for (const k of Object.keys(row)) {
      if (!rowFields.has(k)) {
        throw new GridError(`${where}: unknown row field '${k}' (fields: ${[...rowFields].join(", ")})`);
      }
    }
    if (row.label !== undefined && typeof row.label !== "string") {
      throw new GridError(`${where}: 'label' must be a string`);
    }
    if (row.paper !== undefined && row.paper !== null && typeof row.paper !== "number") {
      throw new GridError(`${where}: 'paper' must be a number or null`);
    }
    if (row.smoke !== undefined && typeof row.smoke !== "boolean") {
      throw new GridError(`${where}: 'smoke' must be true or false`);
    }
    checkOverrides(row.overrides, where);
    if (
      row.needs !== undefined && (!Array.isArray(row.needs) || row.needs.some((n) => typeof n !== "string"))
    ) {
      throw new GridError(`${where}: 'needs' must be a list of row names`);
    }
  }
  for (const row of grid.rows) {
    for (const need of row.needs ?? []) {
      const parts = need.split("/");
      const ok = parts.length === 1
        ? names.has(need)
        : parts.length === 2 && ROW_NAME.test(parts[0]) && ROW_NAME.test(parts[1]);
      if (!ok) {
        throw new GridError(
          `${path}: row '${row.name}' needs '${need}', which is not a row of this grid (rows: ${
            [...names].join(", ")
          }; another grid's row is 'grid/row')`,
        );
      }
    }
  }
  for (const row of grid.rows.filter((r) => r.smoke !== false)) {
    const out = (row.needs ?? []).find((n) => grid.rows.find((r) => r.name === n)?.smoke === false);
    if (out) {
      throw new GridError(
        `${path}: row '${row.name}' is in the smoke preset but needs '${out}', which is not`,
      );
    }
  }
  const local = new Map(
    grid.rows.map((r) => [r.name, (r.needs ?? []).filter((n) => !n.includes("/"))]),
  );
  const cycle = findCycle(local);
  if (cycle) throw new GridError(`${path}: rows need each other in a cycle: ${cycle.join(" → ")}`);
}

function checkOverrides(o: unknown, where: string): void {
  if (o === undefined) return;
  if (!o || typeof o !== "object" || Array.isArray(o)) {
    throw new GridError(`${where}: overrides must be an object`);
  }
  try {
    checkPartial(o as Record<string, unknown>, where);
  } catch (e) {
    throw new GridError((e as Error).message);
  }
}

/** A cycle in a "needs" graph (as the list of ids, first repeated last), or null. */
export function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>(); // 1 on the path, 2 finished
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 2) return null;
    if (state.get(n) === 1) return [...path.slice(path.indexOf(n)), n];
    state.set(n, 1);
    path.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    path.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

/** `{runs}` in every string value → the runs root. */
function substitute(o: Partial<TrainConfig> | undefined, runs: string): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o ?? {})) {
    out[k] = typeof v === "string" ? v.replaceAll("{runs}", runs) : v;
  }
  return out as Partial<TrainConfig>;
}

/** The runs of a grid for a preset: folders, resolved configs, needs as run ids. */
export async function expandGrid(
  grid: LoadedGrid,
  opts: { preset: Preset; root?: string },
): Promise<RunSpec[]> {
  const runs = runsRoot(opts.preset, opts.root);
  let base;
  try {
    base = await loadConfigFile(grid.base);
  } catch (e) {
    throw new GridError(`${grid.path}: base config: ${(e as Error).message}`);
  }
  const rows = opts.preset === "smoke" ? grid.rows.filter((r) => r.smoke !== false) : grid.rows;
  return rows.map((row) => {
    const merged = {
      ...base.config,
      ...substitute(grid.overrides, runs),
      ...substitute(row.overrides, runs),
      ...(opts.preset === "smoke" ? substitute(grid.smoke, runs) : {}),
    };
    let config: TrainConfig;
    try {
      config = { ...resolveConfig(merged, {}) };
    } catch (e) {
      throw new GridError(`${grid.path}: row '${row.name}': ${(e as Error).message}`);
    }
    const id = `${grid.name}/${row.name}`;
    return {
      id,
      grid: grid.name,
      row,
      dir: `${runs}/${grid.name}/${row.name}`,
      config,
      configFile: {
        description: `sweep run ${id}${row.label ? ` (${row.label})` : ""} of grid ${grid.name} ` +
          `(base ${grid.base}, preset ${opts.preset}): ${grid.description}`,
        config,
      },
      needs: (row.needs ?? []).map((n) => (n.includes("/") ? n : `${grid.name}/${n}`)),
    };
  });
}

/**
 * The runs of the named grids, plus (transitively) the rows of other grids that they need, in dependency
 * order where possible; errors on unknown grids or rows and on cycles across grids.
 */
export async function planSweep(
  names: string[],
  opts: { preset: Preset; root?: string },
): Promise<RunSpec[]> {
  const grids = new Map<string, LoadedGrid>();
  const expanded = new Map<string, RunSpec[]>();
  const load = async (nameOrPath: string): Promise<RunSpec[]> => {
    const g = await loadGrid(nameOrPath);
    const known = grids.get(g.name);
    if (known && known.path !== g.path) {
      throw new GridError(`two grids are named '${g.name}': ${known.path} and ${g.path}`);
    }
    if (!expanded.has(g.name)) {
      grids.set(g.name, g);
      expanded.set(g.name, await expandGrid(g, opts));
    }
    return expanded.get(g.name)!;
  };
  const runs = new Map<string, RunSpec>();
  const queue: RunSpec[] = [];
  for (const n of names) {
    for (const r of await load(n)) {
      if (!runs.has(r.id)) {
        runs.set(r.id, r);
        queue.push(r);
      }
    }
  }
  // Needed rows of grids that were not asked for join the sweep.
  while (queue.length) {
    const r = queue.shift()!;
    for (const need of r.needs) {
      if (runs.has(need)) continue;
      const [g, row] = need.split("/");
      // Another grid: the one of that name beside the needing grid's file, else configs/grids/NAME.
      const folder = grids.get(r.grid)!.path.replace(/\/[^/]*$/, "");
      const beside = [`${folder}/${g}.ts`, `${folder}/${g}.json`];
      const where = grids.has(g) ? g : (await firstExisting(beside)) ?? g;
      const specs = grids.has(g) ? expanded.get(g)! : await load(where).catch((e) => {
        throw new GridError(`run ${r.id} needs '${need}': ${(e as Error).message}`);
      });
      const spec = specs.find((s) => s.row.name === row);
      if (!spec) throw new GridError(`run ${r.id} needs '${need}', but grid '${g}' has no row '${row}'`);
      runs.set(spec.id, spec);
      queue.push(spec);
    }
  }
  const cycle = findCycle(new Map([...runs].map(([id, r]) => [id, r.needs])));
  if (cycle) throw new GridError(`runs need each other in a cycle: ${cycle.join(" → ")}`);
  return [...runs.values()];
}

/** Dependency level of each run: 0 without needs (in the list), else 1 + the deepest need's. */
export function levels(runs: RunSpec[]): Map<string, number> {
  const byId = new Map(runs.map((r) => [r.id, r]));
  const out = new Map<string, number>();
  const level = (r: RunSpec): number => {
    const known = out.get(r.id);
    if (known !== undefined) return known;
    const l = Math.max(-1, ...r.needs.filter((n) => byId.has(n)).map((n) => level(byId.get(n)!))) + 1;
    out.set(r.id, l);
    return l;
  };
  for (const r of runs) level(r);
  return out;
}

/** Write `<dir>/sweep-config.json` (what the run trains with). */
export async function writeRunConfig(run: RunSpec): Promise<string> {
  const dir = repoPath(run.dir);
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/sweep-config.json`;
  await Deno.writeTextFile(path, JSON.stringify(run.configFile, null, 2) + "\n");
  return path;
}

/**
 * What changed in a run's config since it was started: `key: old → new` for every key whose value in
 * `<dir>/sweep-config.json` differs from the config the grid gives now (none when the run never started).
 */
export async function configChanges(run: RunSpec): Promise<string[]> {
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(await Deno.readTextFile(`${repoPath(run.dir)}/sweep-config.json`)).config ?? {};
  } catch {
    return [];
  }
  const now = run.config as unknown as Record<string, unknown>;
  const defaults = DEFAULTS as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(old), ...Object.keys(now)])];
  // A key added to the config since the run started changes nothing while it keeps its default.
  const same = (k: string) =>
    JSON.stringify(old[k]) === JSON.stringify(now[k]) ||
    (!(k in old) && JSON.stringify(now[k]) === JSON.stringify(defaults[k]));
  return keys.filter((k) => !same(k)).map((k) =>
    `${k}: ${JSON.stringify(old[k])} → ${JSON.stringify(now[k])}`
  );
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) if (await exists(p)) return p;
  return undefined;
}
