/**
 * The agent's cache of built runtime envs (pip virtualenvs, npm node_modules, installed wheels),
 * one directory per (kind, spec hash) under `<work>/envs/<kind>/<key>`.
 *
 * - Built once: concurrent requests for one key share one build (an in-process promise map), and
 *   a lock file keeps a second process off a key while it is being built.
 * - Never half-built: an env is ready only once `<key>.json` exists, written atomically after the
 *   build. Envs are built in place rather than renamed into place because virtualenvs are not
 *   relocatable (their scripts name their own path); a directory without its `.json` is a crashed
 *   build and is removed.
 * - Shared safely: each task holds a lease (a reference count); the cache evicts least-recently
 *   used envs while it is over its size limit, and never one that a task holds.
 * - A build belongs to the tasks waiting for it: when every one of them gives up (stopped, setup
 *   timeout) the build is aborted and its installer killed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { untilAborted } from '../../shared/abort.js';
import type { Logger } from '../../shared/log.js';
import { makeTreeReadOnly, pidAlive, removeTree, removeTreeSync, treeSize, writeFileAtomic } from './files.js';
import { AbortedError } from './run.js';

export const CACHE_KINDS = ['pip', 'npm', 'py_modules'] as const;
export type CacheKind = (typeof CACHE_KINDS)[number];

export interface BuildContext {
  /** The env's directory: empty, writable, at its final path. */
  dir: string;
  signal: AbortSignal;
  /** Build output, sent to the logs of every task waiting for this build. */
  output: (text: string) => void;
}

export interface AcquireOptions {
  signal: AbortSignal;
  output: (text: string) => void;
  /** What the env is, for log lines ("pip virtualenv"). */
  label: string;
}

export interface Lease {
  dir: string;
  /** True when this request built the env (or waited for a build); false when it was reused. */
  built: boolean;
  release(): void;
}

export type KindUsage = {
  bytes: number;
  entries: number;
  in_use: number;
};

/** A type (not an interface) so it fits the report's free-form `usage` object. */
export type CacheUsage = {
  cache_bytes: number;
  cache_limit_bytes: number;
  caches: Record<CacheKind, KindUsage>;
  building: number;
};

interface Entry {
  kind: CacheKind;
  key: string;
  dir: string;
  bytes: number;
  lastUsed: number;
  /** Breaks ties between uses in the same millisecond. */
  useSeq: number;
  refs: number;
}

interface Build {
  promise: Promise<Entry>;
  controller: AbortController;
  waiters: number;
  outputs: Set<(text: string) => void>;
}

const LOCK_POLL_MS = 200;
const KEY = /^[A-Za-z0-9_.-]+$/;

export class EnvCache {
  private readonly entries = new Map<string, Entry>();
  private readonly builds = new Map<string, Build>();
  private useSeq = 0;

  constructor(
    readonly root: string,
    readonly limitBytes: number,
    private readonly log: Logger,
  ) {
    for (const kind of CACHE_KINDS) {
      fs.mkdirSync(path.join(root, kind), { recursive: true, mode: 0o711 });
      this.scan(kind);
    }
    this.evict();
  }

  /** Find what a previous run of the agent left: ready envs are kept, half-built ones removed. */
  private scan(kind: CacheKind): void {
    const dir = path.join(this.root, kind);
    const names = new Set(fs.readdirSync(dir));
    for (const name of names) {
      const p = path.join(dir, name);
      if (name.startsWith('.trash-') || name.endsWith('.tmp')) removeTreeSync(p);
      else if (name.endsWith('.lock') && !this.lockHolderAlive(p)) fs.rmSync(p, { force: true });
    }
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      if (name.endsWith('.json')) {
        const key = name.slice(0, -'.json'.length);
        if (!names.has(key)) fs.rmSync(p, { force: true });
        else this.load(kind, key);
      } else if (!name.endsWith('.lock') && !fs.existsSync(`${p}.json`) && !fs.existsSync(`${p}.lock`)) {
        this.log.info({ kind, key: name }, 'removing an env whose build did not finish');
        removeTreeSync(p);
      }
    }
  }

  private id(kind: CacheKind, key: string): string {
    return `${kind}/${key}`;
  }

  dirOf(kind: CacheKind, key: string): string {
    return path.join(this.root, kind, key);
  }

  /** A ready env as recorded on disk (by this process or another one), or null. */
  private load(kind: CacheKind, key: string): Entry | null {
    const known = this.entries.get(this.id(kind, key));
    if (known) return known;
    const dir = this.dirOf(kind, key);
    try {
      const meta = JSON.parse(fs.readFileSync(`${dir}.json`, 'utf8')) as { bytes?: number };
      const st = fs.statSync(`${dir}.json`);
      if (!fs.statSync(dir).isDirectory()) return null;
      const entry: Entry = { kind, key, dir, bytes: meta.bytes ?? treeSize(dir), lastUsed: st.mtimeMs, useSeq: 0, refs: 0 };
      this.entries.set(this.id(kind, key), entry);
      return entry;
    } catch {
      return null;
    }
  }

  /**
   * A lease on the env `kind/key`, building it with `build` unless it is ready. Rejects with
   * AbortedError as soon as `opts.signal` aborts, whether or not the build goes on for others.
   */
  async acquire(kind: CacheKind, key: string, opts: AcquireOptions, build: (ctx: BuildContext) => Promise<void>): Promise<Lease> {
    if (!KEY.test(key)) throw new Error(`invalid cache key ${key}`);
    const id = this.id(kind, key);
    const ready = this.load(kind, key);
    if (ready) {
      opts.output(`[raysub] ${opts.label}: reusing the cached env ${key}\n`);
      return this.lease(ready, false);
    }
    let b = this.builds.get(id);
    if (b && !b.controller.signal.aborted) opts.output(`[raysub] ${opts.label}: waiting for env ${key}, which another task is building\n`);
    else b = this.startBuild(kind, key, opts.label, build, b);
    b.waiters++;
    b.outputs.add(opts.output);
    const current = b;
    let entry: Entry;
    try {
      entry = await untilAborted(current.promise, opts.signal, () => new AbortedError());
    } finally {
      current.waiters--;
      current.outputs.delete(opts.output);
      if (current.waiters === 0 && this.builds.get(id) === current) current.controller.abort();
    }
    return this.lease(entry, true);
  }

  private startBuild(kind: CacheKind, key: string, label: string, build: (ctx: BuildContext) => Promise<void>, previous: Build | undefined): Build {
    const id = this.id(kind, key);
    const controller = new AbortController();
    const outputs = new Set<(text: string) => void>();
    const output = (text: string): void => {
      for (const o of outputs) o(text);
    };
    const promise = (async (): Promise<Entry> => {
      // An aborted build of the same key may still be killing its installer and cleaning up.
      await previous?.promise.catch(() => undefined);
      const unlock = await this.lock(kind, key, controller.signal);
      try {
        const done = this.load(kind, key);
        if (done) return done;
        const dir = this.dirOf(kind, key);
        await removeTree(dir);
        fs.mkdirSync(dir, { recursive: true });
        const started = Date.now();
        output(`[raysub] ${label}: building env ${key}\n`);
        try {
          await build({ dir, signal: controller.signal, output });
          if (controller.signal.aborted) throw new AbortedError();
          makeTreeReadOnly(dir);
        } catch (err) {
          await removeTree(dir);
          throw err;
        }
        const bytes = treeSize(dir);
        writeFileAtomic(`${dir}.json`, JSON.stringify({ kind, key, bytes, built_at: new Date().toISOString(), build_ms: Date.now() - started }));
        output(`[raysub] ${label}: env ${key} ready in ${((Date.now() - started) / 1000).toFixed(1)}s (${(bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
        this.log.info({ kind, key, bytes, ms: Date.now() - started }, 'runtime env built');
        const entry = this.load(kind, key);
        if (!entry) throw new Error(`env ${key} vanished after its build`);
        return entry;
      } finally {
        unlock();
      }
    })();
    const b: Build = { promise, controller, waiters: 0, outputs };
    // Nobody may be waiting any more when a build fails; that is not an unhandled rejection.
    promise.catch(() => undefined);
    void promise.finally(() => {
      if (this.builds.get(id) === b) this.builds.delete(id);
    }).catch(() => undefined);
    this.builds.set(id, b);
    return b;
  }

  /** Keep other processes off a key while it is built; a lock whose holder died is stale. */
  private async lock(kind: CacheKind, key: string, signal: AbortSignal): Promise<() => void> {
    const file = `${this.dirOf(kind, key)}.lock`;
    for (;;) {
      if (signal.aborted) throw new AbortedError();
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
        return () => fs.rmSync(file, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (!this.lockHolderAlive(file)) {
        fs.rmSync(file, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }

  /** Within this process builds are deduplicated in memory, so a lock naming our own pid is a leftover. */
  private lockHolderAlive(file: string): boolean {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8'));
      return Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid);
    } catch {
      return false;
    }
  }

  private lease(entry: Entry, built: boolean): Lease {
    entry.refs++;
    this.touch(entry);
    this.evict();
    let released = false;
    return {
      dir: entry.dir,
      built,
      release: () => {
        if (released) return;
        released = true;
        entry.refs--;
        this.touch(entry);
        this.evict();
      },
    };
  }

  private touch(entry: Entry): void {
    entry.lastUsed = Date.now();
    entry.useSeq = ++this.useSeq;
    const t = new Date(entry.lastUsed);
    try {
      fs.utimesSync(`${entry.dir}.json`, t, t);
    } catch {
      // the record is only a hint for the next run's LRU order
    }
  }

  /** Evict least-recently-used envs no task holds until the cache fits its limit. */
  private evict(): void {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    if (total <= this.limitBytes) return;
    const idle = [...this.entries.values()].filter((e) => e.refs === 0).sort((a, b) => a.lastUsed - b.lastUsed || a.useSeq - b.useSeq);
    for (const e of idle) {
      if (total <= this.limitBytes) break;
      this.remove(e);
      total -= e.bytes;
    }
  }

  private remove(e: Entry): void {
    this.entries.delete(this.id(e.kind, e.key));
    // Forget the record first: from then on the env is not ready, whatever happens next.
    fs.rmSync(`${e.dir}.json`, { force: true });
    const trash = path.join(this.root, e.kind, `.trash-${e.key}-${crypto.randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(e.dir, trash);
    } catch {
      return;
    }
    this.log.info({ kind: e.kind, key: e.key, bytes: e.bytes }, 'evicted a runtime env from the cache');
    void removeTree(trash).catch((err: unknown) => this.log.warn({ err, trash }, 'could not remove an evicted env'));
  }

  usage(): CacheUsage {
    const caches = Object.fromEntries(CACHE_KINDS.map((k) => [k, { bytes: 0, entries: 0, in_use: 0 }])) as Record<CacheKind, KindUsage>;
    let total = 0;
    for (const e of this.entries.values()) {
      const u = caches[e.kind];
      u.bytes += e.bytes;
      u.entries++;
      if (e.refs > 0) u.in_use++;
      total += e.bytes;
    }
    return { cache_bytes: total, cache_limit_bytes: this.limitBytes, caches, building: this.builds.size };
  }
}
