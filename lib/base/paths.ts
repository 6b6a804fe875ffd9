/**
 * File paths: the repository's root and file-URL conversion that survives spaces and non-ASCII names
 * (`URL.pathname` would give `sp%20ace`), and one `exists`.
 */
import { fileURLToPath } from "node:url";

/** A `file:` URL (or a path) as a file-system path, percent-decoded. */
export function fromFileUrl(url: string | URL): string {
  if (typeof url === "string" && !url.startsWith("file:")) return url;
  return fileURLToPath(url);
}

/** The repository's root directory (no trailing slash). */
export const REPO_ROOT: string = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** `REPO_ROOT/parts…`. */
export function repoPath(...parts: string[]): string {
  return [REPO_ROOT, ...parts].join("/");
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
