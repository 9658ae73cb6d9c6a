/** Where the cgroup hierarchies are mounted, read from /proc/self/mountinfo. */

export type V1Controller = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'devices';
export const V1_CONTROLLERS: readonly V1Controller[] = ['memory', 'cpu', 'cpuset', 'pids', 'devices'];
/** A v1 controller's own hierarchy, or the cgroup2 one. */
export type Hierarchy = V1Controller | 'unified';

export interface CgroupMounts {
  v1: Partial<Record<V1Controller, string>>;
  unified: string | null;
}

function unescapeMount(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Where each hierarchy is mounted, from /proc/self/mountinfo. */
export function findCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: {}, unified: null };
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mountPoint = unescapeMount(pre.split(' ')[4] ?? '');
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype === 'cgroup2') out.unified ??= mountPoint;
    if (fstype !== 'cgroup') continue;
    for (const opt of superOpts.split(',')) {
      const c = V1_CONTROLLERS.find((v) => v === opt);
      if (c) out.v1[c] ??= mountPoint;
    }
  }
  return out;
}
