/**
 * The agent's unpacked packages (`<work>/unpacked/<name>`): each fetched from the head and
 * unpacked once (off the event loop, with the caps and tree checks of the archive module),
 * read-only, shared by every task that names it. Tasks hold a lease while they use one; a package
 * no task holds is removed once unused for the TTL, or earlier, least recently used first, while
 * the cache is over its size limit.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { untilAborted } from '../shared/abort.js';
import { archiveKind, type ArchiveCaps } from '../shared/archive/index.js';
import { RaysubError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { packageScheme } from '../shared/protocol/packages.js';
import { isRemotePackageName, type RemotePackage } from '../shared/remotePackages.js';
import { fileOp } from './files/index.js';
import type { HeadLink } from './headLink.js';
import { DEFAULT_FETCH_IDLE_MS, fetchRemotePackage, type FetchLimits } from './remoteFetch.js';

export interface PackageLease {
  dir: string;
  release(): void;
}

export interface PackageCacheOptions {
  caps: ArchiveCaps;
  unusedTtlMs: number;
  limitBytes: number;
  /** Remote packages (http(s) archives in a runtime env): the most one may be, and how long a quiet server is waited for. */
  remote?: FetchLimits;
}

/** A name this cache keeps: a package from the head, or a remote package's. */
function cacheable(name: string): boolean {
  return packageScheme(name) !== null || isRemotePackageName(name);
}

interface Entry {
  name: string;
  dir: string;
  bytes: number;
  refs: number;
  lastUsed: number;
}

/** When a package directory was last used (its mtime), or null when it cannot be read. */
function lastUseOf(dir: string): number | null {
  try {
    return fs.statSync(dir).mtimeMs;
  } catch {
    return null;
  }
}

export class PackageCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private timer: NodeJS.Timeout | null = null;
  /** A fetch serves every task waiting for it, so only closing the cache cancels it. */
  private readonly closing = new AbortController();

  constructor(
    /** Downloads in progress. */
    private readonly downloadDir: string,
    private readonly dir: string,
    private readonly head: Pick<HeadLink, 'download'>,
    private readonly opts: PackageCacheOptions,
    private readonly log: Logger,
  ) {
    for (const d of [downloadDir, dir]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    for (const f of fs.readdirSync(downloadDir)) fs.rmSync(path.join(downloadDir, f), { recursive: true, force: true });
    const now = Date.now();
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      // Packages a previous run unpacked are kept and collected like any other, by when a task last
      // used them (their mtime, set at each release): a restart does not start their TTL again,
      // so an agent restarting more often than the TTL still collects. Half-done ones go.
      if (cacheable(name)) this.entries.set(name, { name, dir: p, bytes: 0, refs: 0, lastUsed: Math.min(now, lastUseOf(p) ?? now) });
      else this.discard(p);
    }
  }

  /**
   * A lease on the unpacked tree of `name` (from the head), or of `remote` (fetched from its URL),
   * fetching and unpacking it once however many ask.
   */
  async acquire(name: string, signal: AbortSignal, remote?: RemotePackage): Promise<PackageLease> {
    if (remote ? remote.name !== name || !isRemotePackageName(name) : packageScheme(name) === null) throw new RaysubError('INVALID_PACKAGE', `invalid package name "${name}"`);
    let entry = this.entries.get(name);
    if (!entry) {
      let p = this.inflight.get(name);
      if (!p) {
        p = this.fetch(name, this.closing.signal, remote).finally(() => this.inflight.delete(name));
        // Nobody may be waiting any more when it fails: that is not an unhandled rejection.
        p.catch(() => undefined);
        this.inflight.set(name, p);
      }
      entry = await untilAborted(p, signal);
    }
    const e = entry;
    e.refs++;
    e.lastUsed = Date.now();
    let released = false;
    return {
      dir: e.dir,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
        e.lastUsed = Date.now();
        this.recordUse(e);
        this.evictOverLimit();
      },
    };
  }

  private async fetch(name: string, signal: AbortSignal, remote?: RemotePackage): Promise<Entry> {
    const kind = archiveKind(name);
    if (!kind) throw new RaysubError('INVALID_PACKAGE', `unsupported package ${name}`);
    const tag = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    const file = path.join(this.downloadDir, `${tag}-${name}`);
    const staging = path.join(this.dir, `.tmp-${tag}-${name}`);
    try {
      if (remote) {
        await fetchRemotePackage(remote, file, this.opts.remote ?? { maxBytes: DEFAULT_REMOTE_MAX_BYTES, idleMs: DEFAULT_FETCH_IDLE_MS }, signal);
      } else {
        const body = await this.head.download(name, signal);
        await pipeline(body, fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }), { signal });
      }
      let bytes: number;
      if (kind === 'whl') {
        // pip installs a wheel from the file itself; it is checked like any zip first.
        await fileOp({ op: 'inspect', file, kind, caps: this.opts.caps });
        await fs.promises.mkdir(staging, { mode: 0o755 });
        // A remote wheel keeps its own file name inside (pip installs it by that name).
        const inside = remote?.wheel ?? name;
        await fs.promises.rename(file, path.join(staging, inside));
        await fs.promises.chmod(path.join(staging, inside), 0o444);
        await fs.promises.chmod(staging, 0o555);
        bytes = (await fs.promises.stat(path.join(staging, inside))).size;
      } else {
        bytes = (await fileOp({ op: 'extract', file, kind, dest: staging, caps: this.opts.caps })).bytes;
      }
      const dir = path.join(this.dir, name);
      // As Ray unpacks a remote archive: one top-level directory (a repository's archive) is its root.
      const root = remote ? await soleTopDir(staging) : null;
      if (root) {
        const mode = (await fs.promises.stat(root)).mode & 0o777;
        // Moving a directory to another parent rewrites its `..`: it must be writable meanwhile.
        await fs.promises.chmod(staging, 0o700);
        await fs.promises.chmod(root, 0o700);
        await fs.promises.rename(root, dir);
        await fs.promises.chmod(dir, mode);
        this.discard(staging);
      } else await fs.promises.rename(staging, dir);
      const entry: Entry = { name, dir, bytes, refs: 0, lastUsed: Date.now() };
      this.entries.set(name, entry);
      this.log.info({ name, bytes }, 'package unpacked');
      return entry;
    } catch (err) {
      this.discard(staging);
      throw err;
    } finally {
      await fs.promises.rm(file, { force: true });
    }
  }

  /** Keep the time of a package's last use where a restarted agent finds it: its directory's mtime. */
  private recordUse(e: Entry): void {
    const at = new Date(e.lastUsed);
    void fs.promises.utimes(e.dir, at, at).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, path: e.dir }, "could not record a package's last use");
    });
  }

  /** Remove a tree in the background (renamed away first, so its name is free at once). */
  private discard(p: string): void {
    void fileOp({ op: 'remove', path: p }).catch((err: unknown) => this.log.warn({ err, path: p }, 'could not remove a package directory'));
  }

  private remove(e: Entry): void {
    this.entries.delete(e.name);
    const trash = path.join(this.dir, `.trash-${crypto.randomBytes(4).toString('hex')}-${e.name}`);
    try {
      fs.renameSync(e.dir, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    this.discard(trash);
  }

  /** Remove packages no task holds that were unused for the TTL. */
  sweep(now = Date.now()): string[] {
    const removed: string[] = [];
    for (const e of [...this.entries.values()]) {
      if (e.refs > 0 || now - e.lastUsed < this.opts.unusedTtlMs) continue;
      this.remove(e);
      removed.push(e.name);
    }
    if (removed.length > 0) this.log.info({ removed }, 'removed unpacked packages no task used recently');
    return removed;
  }

  private evictOverLimit(): void {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    if (total <= this.opts.limitBytes) return;
    const idle = [...this.entries.values()].filter((e) => e.refs === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle) {
      if (total <= this.opts.limitBytes) break;
      this.remove(e);
      total -= e.bytes;
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.sweep();
      } catch (err) {
        this.log.error({ err }, 'package sweep failed; retrying at the next one');
      }
    }, Math.max(1000, Math.min(60_000, this.opts.unusedTtlMs / 2)));
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.closing.abort();
  }

  /** Names and use counts, for tests and the node's report. */
  usage(): { name: string; refs: number; bytes: number }[] {
    return [...this.entries.values()].map((e) => ({ name: e.name, refs: e.refs, bytes: e.bytes }));
  }
}

/** The most a remote package may be when the agent was given no limit. */
const DEFAULT_REMOTE_MAX_BYTES = 512 * 1024 * 1024;

/** The one directory an unpacked tree holds at its top (macOS's `__MACOSX` aside), or null. */
async function soleTopDir(tree: string): Promise<string | null> {
  const names = (await fs.promises.readdir(tree)).filter((n) => n !== '__MACOSX');
  if (names.length !== 1) return null;
  const only = path.join(tree, names[0] as string);
  return (await fs.promises.lstat(only)).isDirectory() ? only : null;
}
