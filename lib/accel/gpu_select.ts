/**
 * One process per GPU: the environment that confines a process to one GPU, for both GPU backends. No TensorFlow.js
 * here (the sweep runner uses it without loading a backend).
 */

/**
 * PCI addresses of the NVIDIA GPUs by CUDA index (nvidia-smi's order, which CUDA_VISIBLE_DEVICES also uses), as
 * `domain:bus:device.function` (e.g. "00000000:1B:00.0"); empty when nvidia-smi is absent.
 */
export async function nvidiaBusIds(): Promise<string[]> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=index,pci.bus_id", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return [];
    const ids: string[] = [];
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const m = line.match(/^\s*(\d+),\s*([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-7])\s*$/);
      if (m) ids[Number(m[1])] = m[2];
    }
    return ids;
  } catch {
    return [];
  }
}

/**
 * The environment that confines a process to GPU `index` (nvidia-smi's order) for both GPU backends.
 * - tfjs-node-gpu (TensorFlow, CUDA): `CUDA_VISIBLE_DEVICES=index`; the process sees that GPU alone.
 * - WebGPU (Deno's wgpu over Vulkan): Vulkan ignores CUDA_VISIBLE_DEVICES and Deno has no adapter index; wgpu
 *   takes the first adapter Vulkan lists. Mesa's device-select layer (an implicit Vulkan layer of
 *   `mesa-vulkan-drivers`, applied to every driver, NVIDIA's too) reorders that list: `DRI_PRIME=pci-…!` puts the
 *   GPU at that PCI address first and hides the others (from the bus id when known, else `DRI_PRIME=N!`, the Nth
 *   GPU after the default one). This needs a Mesa whose layer understands it: 25.x does (Debian 12's
 *   bookworm-backports); Debian 12's own 22.3 compares the PCI address the wrong way round and has no `!`, so
 *   every WebGPU run lands on the same GPU there. `VK_LOADER_DRIVERS_DISABLE` keeps the CPU driver (lavapipe) out.
 */
export function gpuEnv(index: string, busId?: string): Record<string, string> {
  const env: Record<string, string> = { CUDA_VISIBLE_DEVICES: index, VK_LOADER_DRIVERS_DISABLE: "*lvp*" };
  const m = busId?.match(/^([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)\.([0-7])$/);
  if (m) {
    const hex = (v: string, n: number) => parseInt(v, 16).toString(16).padStart(n, "0");
    env.DRI_PRIME = `pci-${hex(m[1], 4)}_${hex(m[2], 2)}_${hex(m[3], 2)}_${m[4]}!`;
  } else if (index === "0") env.MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE = "1";
  else env.DRI_PRIME = `${index}!`;
  return env;
}

export interface VisibleGpu {
  /** nvidia-smi's index. */
  index: number;
  name: string;
  uuid: string;
}

/**
 * The NVIDIA GPUs this process may use: nvidia-smi's list, filtered by CUDA_VISIBLE_DEVICES as CUDA reads it
 * (indices or UUID prefixes, comma-separated; the list ends at the first entry that names no GPU; an empty
 * value hides them all). Empty without nvidia-smi.
 */
export async function visibleGpus(env = Deno.env.get("CUDA_VISIBLE_DEVICES")): Promise<VisibleGpu[]> {
  let all: VisibleGpu[] = [];
  try {
    const out = await new Deno.Command("nvidia-smi", { args: ["-L"], stdout: "piped", stderr: "null" })
      .output();
    if (!out.success) return [];
    all = parseNvidiaSmiList(new TextDecoder().decode(out.stdout));
  } catch {
    return [];
  }
  return filterVisible(all, env);
}

/** `nvidia-smi -L` lines: "GPU 0: NVIDIA H200 (UUID: GPU-…)". */
export function parseNvidiaSmiList(text: string): VisibleGpu[] {
  const out: VisibleGpu[] = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^GPU (\d+): (.*?) \(UUID: ([^)]+)\)/);
    if (m) out.push({ index: Number(m[1]), name: m[2], uuid: m[3] });
  }
  return out;
}

/** CUDA_VISIBLE_DEVICES applied to a list of GPUs (undefined: all visible). */
export function filterVisible(all: VisibleGpu[], env: string | undefined): VisibleGpu[] {
  if (env === undefined) return all;
  const out: VisibleGpu[] = [];
  for (const item of env.split(",").map((s) => s.trim())) {
    const gpu = /^\d+$/.test(item)
      ? all.find((g) => g.index === Number(item))
      : item
      ? all.find((g) => g.uuid.startsWith(item.startsWith("GPU-") ? item : `GPU-${item}`))
      : undefined;
    if (!gpu || out.includes(gpu)) break;
    out.push(gpu);
  }
  return out;
}
