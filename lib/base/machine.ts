/** An environment variable, or undefined when it is unset, empty, or the process may not read it. */
export function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env
  }
}

/** One line describing this machine, for result tables ("2 cores, Intel Xeon …, 23 GiB, Deno 2.9.6"). */
export async function machineLine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = info.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? cpu;
  } catch { /* not Linux */ }
  const gib = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
  return `${navigator.hardwareConcurrency} cores, ${cpu}, ${gib} GiB, Deno ${Deno.version.deno}`;
}
