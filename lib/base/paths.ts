/**
 * File paths: the repository's root and file-URL conversion that survives spaces and non-ASCII names
 * (`URL.pathname` would give `sp%20ace`), and one `exists`.
 */
import { fileURLToPath, pathToFileURL } from "node:url";

/** A `file:` URL (or a path) as a file-system path, percent-decoded. */
export function fromFileUrl(url: string | URL): string {
  if (typeof url === "string" && !url.startsWith("file:")) return url;
  return fileURLToPath(url);
}

/** An absolute file-system path as a `file:` URL string (for `import()`), percent-encoded. */
export function toFileUrl(path: string): string {
  return pathToFileURL(path).href;
}

/** The repository's root directory (no trailing slash). */
export const REPO_ROOT: string = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");

/**
 * `REPO_ROOT/parts…`; an absolute first part stays as it is (`repoPath("/data/x")` is `/data/x`), so a path
 * that is relative to the repository or absolute becomes a file-system path.
 */
export function repoPath(...parts: string[]): string {
  return (parts[0]?.startsWith("/") ? parts : [REPO_ROOT, ...parts]).join("/");
}

/** Does anything exist at `path` (a broken symlink counts as absent)? */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
