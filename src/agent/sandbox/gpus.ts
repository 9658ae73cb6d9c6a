/**
 * GPU device nodes a task may use: only those of the GPUs it holds (plus the driver's control
 * nodes), bound into its /dev and allowed by the devices cgroup. Everything else in /dev stays
 * out of reach.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Character devices every worker needs: null, zero, full, random, urandom, tty, ptmx and ptys. */
export const BASE_DEVICE_RULES = ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 136:* rwm'];

const DRIVER_NODES = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset'];

/** Host device nodes for the held GPUs (index N is /dev/nvidiaN), where they exist. */
export function gpuDeviceNodes(devDir: string, gpuIds: readonly number[]): string[] {
  if (gpuIds.length === 0) return [];
  return [...DRIVER_NODES, ...gpuIds.map((i) => `nvidia${i}`)].map((n) => path.join(devDir, n)).filter((p) => fs.existsSync(p));
}

function deviceNumber(p: string): { major: bigint; minor: bigint } | null {
  try {
    const dev = fs.statSync(p, { bigint: true }).rdev;
    return { major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn), minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn) };
  } catch {
    return null;
  }
}

/** devices-cgroup allow rules for a task holding `nodes`. */
export function deviceRules(nodes: readonly string[]): string[] {
  const rules = [...BASE_DEVICE_RULES];
  for (const n of nodes) {
    const d = deviceNumber(n);
    if (d) rules.push(`c ${d.major}:${d.minor} rwm`);
  }
  return rules;
}
