/**
 * Which CPUs a task is pinned to. Tasks that ask for whole CPUs get that many CPUs of their own,
 * spread over distinct physical cores first (so two pinned tasks never share a core's threads
 * while another core is idle); fractional requests are not pinned and share every CPU.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Parse a kernel CPU list such as "0-3,8,10-11". */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) continue;
    const end = b !== undefined && Number.isInteger(b) ? b : a;
    for (let i = a; i <= end; i++) out.push(i);
  }
  return out;
}

export function formatCpuList(cpus: readonly number[]): string {
  return [...cpus].sort((x, y) => x - y).join(',');
}

/** Physical core identity of each CPU ("package:core"), read from sysfs; unknown CPUs are their own core. */
export function readCoreIds(cpus: readonly number[], sysCpuDir: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const cpu of cpus) {
    const dir = path.join(sysCpuDir, `cpu${cpu}`, 'topology');
    try {
      const pkg = fs.readFileSync(path.join(dir, 'physical_package_id'), 'utf8').trim();
      const core = fs.readFileSync(path.join(dir, 'core_id'), 'utf8').trim();
      out.set(cpu, `${pkg}:${core}`);
    } catch {
      out.set(cpu, `cpu${cpu}`);
    }
  }
  return out;
}

/**
 * CPUs that other agents on this machine have pinned tasks to, read from their task cgroups next to
 * ours (`<cpuset>/raysub/<other agent>/<task>/cpuset.cpus`). Several agents may share a machine (a
 * test cluster, or a machine split between pools); without this each would pin its first task to
 * the same core and leave the others idle.
 */
export function siblingPinnedCpus(agentRoot: string, allCpus: readonly number[]): Set<number> {
  const out = new Set<number>();
  const top = path.dirname(agentRoot);
  const all = allCpus.length;
  let agents: string[];
  try {
    agents = fs.readdirSync(top, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => path.join(top, d.name));
  } catch {
    return out;
  }
  for (const agent of agents) {
    if (agent === agentRoot) continue;
    let tasks: fs.Dirent[];
    try {
      tasks = fs.readdirSync(agent, { withFileTypes: true }).filter((d) => d.isDirectory());
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const cpus = parseCpuList(fs.readFileSync(path.join(agent, t.name, 'cpuset.cpus'), 'utf8'));
        // An unpinned task carries the whole set: only a strict subset is a pin.
        if (cpus.length < all) for (const c of cpus) out.add(c);
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

export class CpuPinner {
  private readonly busy = new Set<number>();

  constructor(
    readonly cpus: readonly number[],
    private readonly coreOf: ReadonlyMap<number, string>,
    /** CPUs pinned by other agents on this machine, asked for at each pick. */
    private readonly pinnedElsewhere: () => ReadonlySet<number> = () => new Set(),
  ) {}

  private core(cpu: number): string {
    return this.coreOf.get(cpu) ?? `cpu${cpu}`;
  }

  /** `count` free CPUs for one task, or null when that many are not free (the task is then not pinned). */
  take(count: number): number[] | null {
    if (!Number.isInteger(count) || count < 1) return null;
    const elsewhere = this.pinnedElsewhere();
    const free = this.cpus.filter((c) => !this.busy.has(c) && !elsewhere.has(c));
    if (free.length < count) return null;
    const busyCores = new Set([...this.busy].map((c) => this.core(c)));
    const picked: number[] = [];
    const pickedCores = new Set<string>();
    // Idle cores first, then cores this task does not use yet, then siblings of its own.
    const passes: ((c: number) => boolean)[] = [
      (c) => !busyCores.has(this.core(c)) && !pickedCores.has(this.core(c)),
      (c) => !pickedCores.has(this.core(c)),
      () => true,
    ];
    for (const ok of passes) {
      for (const c of free) {
        if (picked.length === count) break;
        if (picked.includes(c) || !ok(c)) continue;
        picked.push(c);
        pickedCores.add(this.core(c));
      }
    }
    for (const c of picked) this.busy.add(c);
    return picked.sort((a, b) => a - b);
  }

  give(cpus: readonly number[]): void {
    for (const c of cpus) this.busy.delete(c);
  }
}
