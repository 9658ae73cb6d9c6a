/**
 * bwrap mount arguments, built in order, remembering what exists inside the sandbox so that a
 * bind's parent directories are created (mode 0755: bwrap running as root would make them 0700)
 * only where they do not already exist.
 */
import path from 'node:path';

type MountKind = 'bind' | 'fresh';

export function isWithin(p: string, dir: string): boolean {
  return p === dir || dir === '/' || p.startsWith(dir.endsWith('/') ? dir : dir + '/');
}

export class MountPlan {
  readonly args: string[] = [];
  /** Mount points in the order made; a later one covers an earlier one. */
  private readonly mounts: { at: string; kind: MountKind }[] = [{ at: '/', kind: 'fresh' }];
  private readonly created = new Set<string>(['/']);

  private deepest(p: string): { at: string; kind: MountKind } {
    let best = this.mounts[0] ?? { at: '/', kind: 'fresh' as const };
    for (const m of this.mounts) if (isWithin(p, m.at) && m.at.length >= best.at.length) best = m;
    return best;
  }

  /** Does `p` exist inside the sandbox so far? Paths inside a host bind exist as on the host. */
  exists(p: string): boolean {
    if (this.created.has(p)) return true;
    const m = this.deepest(p);
    return m.kind === 'bind' || m.at === p;
  }

  /** Visible through a bind already (so binding it again is pointless)? */
  coveredByBind(p: string): boolean {
    return this.deepest(p).kind === 'bind';
  }

  private parents(p: string): void {
    const missing: string[] = [];
    for (let d = path.dirname(p); !this.exists(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) this.dir(d);
  }

  dir(p: string, perms = '0755'): this {
    this.parents(p);
    this.args.push('--perms', perms, '--dir', p);
    this.created.add(p);
    return this;
  }

  private mount(flag: string[], at: string, kind: MountKind): this {
    this.parents(at);
    this.args.push(...flag);
    this.mounts.push({ at, kind });
    return this;
  }

  roBind(src: string, dest = src): this {
    return this.mount(['--ro-bind', src, dest], dest, 'bind');
  }

  bind(src: string, dest = src): this {
    return this.mount(['--bind', src, dest], dest, 'bind');
  }

  devBind(src: string, dest = src): this {
    return this.mount(['--dev-bind', src, dest], dest, 'bind');
  }

  tmpfs(at: string, perms = '0755'): this {
    return this.mount(['--perms', perms, '--tmpfs', at], at, 'fresh');
  }

  proc(at: string): this {
    return this.mount(['--proc', at], at, 'bind');
  }

  dev(at: string): this {
    return this.mount(['--dev', at], at, 'fresh');
  }

  symlink(target: string, at: string): this {
    this.parents(at);
    this.args.push('--symlink', target, at);
    this.created.add(at);
    return this;
  }
}
