/**
 * One job's objects on this agent: results of tasks it submitted or ran, values put here, and
 * copies fetched from other agents. Small values live in memory while the job's share allows,
 * then in files; large ones are files in the job's object directories (objectDirs.ts). All is
 * counted against the job. An object goes when its owner drops its last reference and no task
 * here still needs it as an argument, or when the job ends.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { injobSizes, type RelayValue } from '../../shared/protocol/index.js';
import { formatBytes } from '../../shared/resources.js';
import type { JobBudget } from './budget.js';
import type { PayloadStream } from './frames.js';
import { ENTRY_COST } from './limits.js';
import type { JobObjectDirs } from './objectDirs.js';
import { errorValue, type ObjValue } from './objectValues.js';

export { objectPath } from './objectDirs.js';
export { cancelledValue, errorValue, fromRelay, type ObjValue } from './objectValues.js';

/** Values above this stay in the store of the agent that made them and are fetched on demand. */
export const INLINE_LIMIT = injobSizes.INLINE_LIMIT;

/**
 * On a value whose bytes a table already counted, that table (a property, not a WeakSet: one per
 * object made, and a weak collection's entries cost the garbage collector on every pass).
 */
const COUNTED = Symbol('counted by');
type Marked = ObjValue & { [COUNTED]?: ObjectTable };

interface Entry {
  value: ObjValue | null;
  waiters: ((v: ObjValue) => void)[];
  /** Something here will produce it (a submitted task, a put): no second producer may take the id. */
  claimed: boolean;
}

export class ObjectTable {
  private readonly entries = new Map<string, Entry>();
  private readonly fetching = new Map<string, Promise<string>>();
  /** Objects tasks here wait for or run with, and how many such tasks. */
  private readonly pins = new Map<string, number>();
  /** Objects their owner no longer refers to: freed once ready and unpinned. */
  private readonly released = new Set<string>();
  /** Copies of other nodes' objects fetched here, with their sizes. */
  private readonly copies = new Map<string, number>();
  /** Copies whose path a process here was given (kept: it may read them again). */
  private readonly served = new Set<string>();

  constructor(
    readonly dirs: JobObjectDirs,
    private readonly nodeId: () => string,
    /** Copy a large object from the agent that holds it into `dest`. */
    private readonly fetchRemote: (node: string, id: string, dest: string) => Promise<void>,
    /** Ask an object's owner (another agent) how it stands, waiting for it to be ready. */
    private readonly askOwner: (owner: string, id: string) => Promise<ObjValue>,
    private readonly budget: JobBudget,
    /** Tell the agent that holds a large object made there (and owned here) to free it. */
    private readonly freeRemote: (node: string, id: string) => void,
  ) {}

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      // Counted even when the job is over its share: it is being failed, and the record goes with it.
      this.budget.hold(ENTRY_COST, 'an object record');
      e = { value: null, waiters: [], claimed: false };
      this.entries.set(id, e);
    }
    return e;
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Whether `id` may be produced here: no task or put has taken it already. */
  free(id: string): boolean {
    const e = this.entries.get(id);
    return !e || (!e.claimed && !e.value);
  }

  /** An object this node's clients will produce (a submitted task's result, a put). */
  claim(id: string): void {
    this.entry(id).claimed = true;
  }

  get(id: string): ObjValue | null {
    return this.entries.get(id)?.value ?? null;
  }

  /** Where object `id`'s file is: always directly inside one of this job's object directories. */
  filePath(id: string): string {
    return this.dirs.path(id);
  }

  /**
   * Keep bytes as object `id`'s value: in memory when small and the job's share allows, else as a
   * file here. The first value an object gets is its value: a second one is not kept.
   */
  store(id: string, data: Buffer): ObjValue {
    const existing = this.get(id);
    if (existing) return existing;
    if (data.length <= INLINE_LIMIT && this.budget.fits(data.length)) {
      this.budget.hold(data.length, 'an inline object');
      const v: ObjValue = { kind: 'inline', data };
      this.mark(v);
      return v;
    }
    if (!this.budget.store(data.length, `an object of ${formatBytes(data.length)}`)) return overValue(id, this.budget);
    const tmp = this.tmpPath(this.dirs.place(id, data.length));
    try {
      fs.writeFileSync(tmp, data, { mode: 0o644 });
      fs.renameSync(tmp, this.filePath(id));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      this.dirs.forget(id);
      this.budget.unstore(data.length);
      return errorValue('ObjectLostError', `object ${id} could not be stored on node ${this.nodeId()}: ${(err as Error).message}`, '');
    }
    const v: ObjValue = { kind: 'file', node: this.nodeId(), size: data.length };
    this.mark(v);
    return v;
  }

  /**
   * A stream that writes object `id` to its file as the bytes arrive (a large put or result),
   * counted against the job's store; `value()` once it has ended. Null when the store is full (the
   * job is over its share) or the object has a value already.
   */
  writer(id: string, size: number): (PayloadStream & { value(): ObjValue }) | null {
    if (this.get(id) || !this.budget.store(size, `an object of ${formatBytes(size)}`)) return null;
    const tmp = this.tmpPath(this.dirs.place(id, size));
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'wx', 0o644);
    } catch (err) {
      this.dirs.forget(id);
      this.budget.unstore(size);
      throw err;
    }
    let state: 'open' | 'done' | 'aborted' = 'open';
    const close = (): void => {
      if (state === 'open') fs.closeSync(fd);
    };
    return {
      write: (chunk) => {
        for (let at = 0; at < chunk.length; ) at += fs.writeSync(fd, chunk, at);
      },
      end: () => {
        close();
        state = 'done';
        fs.renameSync(tmp, this.filePath(id));
      },
      abort: () => {
        close();
        if (state !== 'done') {
          fs.rmSync(tmp, { force: true });
          this.dirs.forget(id);
          this.budget.unstore(size);
        }
        state = 'aborted';
      },
      value: () => {
        const v: ObjValue = { kind: 'file', node: this.nodeId(), size };
        this.mark(v);
        return v;
      },
    };
  }

  /**
   * Object `id` as the file a process of the job wrote into its store itself (`size` bytes):
   * sealed and counted against the job, or an error value saying why not.
   */
  adopt(id: string, size: number): ObjValue {
    const existing = this.get(id);
    if (existing || !this.budget.store(size, `an object of ${formatBytes(size)}`)) {
      this.dirs.discard(id);
      return existing ?? overValue(id, this.budget);
    }
    try {
      this.dirs.seal(id, size);
    } catch (err) {
      this.budget.unstore(size);
      this.dirs.discard(id);
      return errorValue('ObjectLostError', `object ${id} could not be taken from the file its process wrote: ${(err as Error).message}`, '');
    }
    const v: ObjValue = { kind: 'file', node: this.nodeId(), size };
    this.mark(v);
    return v;
  }

  /** `v`'s bytes are counted against this job (made by `store`, a writer or `adopt`): resolving it counts nothing more. */
  private mark(v: ObjValue): void {
    (v as Marked)[COUNTED] = this;
  }

  private tmpPath(file: string): string {
    return `${file}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  }

  /** Object `id` is ready: its waiters hear now. The first value wins (a retried or resent one is the same object). */
  resolve(id: string, value: ObjValue): void {
    const e = this.entry(id);
    if (e.value) return;
    e.value = (value as Marked)[COUNTED] === this ? value : this.admit(id, value);
    const waiters = e.waiters;
    e.waiters = [];
    for (const w of waiters) w(e.value);
    if (this.released.has(id)) this.drop(id);
  }

  /** Count a value that came from elsewhere (another agent, the head): in memory if it fits, else on disk. */
  private admit(id: string, v: ObjValue): ObjValue {
    if (v.kind === 'file') return v;
    if (v.kind === 'error') {
      if (this.budget.hold(v.data.length, 'an error object')) return v;
      return { ...v, data: Buffer.alloc(0) };
    }
    if (this.budget.fits(v.data.length)) {
      this.budget.hold(v.data.length, 'an inline object');
      return v;
    }
    return this.store(id, v.data);
  }

  /** The value once ready; for an object owned elsewhere, asks its owner. */
  whenReady(id: string, owner: string): Promise<ObjValue> {
    const v = this.entries.get(id)?.value;
    return v ? Promise.resolve(v) : new Promise((resolve) => this.onReady(id, owner, resolve));
  }

  /**
   * `then` called with the value once ready (now, if it is), without a promise: `then` must not
   * throw (wrap it in an error boundary). For an object owned elsewhere, asks its owner.
   */
  onReady(id: string, owner: string, then: (v: ObjValue) => void): void {
    const e = this.entries.get(id);
    if (e?.value) return then(e.value);
    if (!e && owner && owner !== this.nodeId()) {
      this.entry(id);
      this.askOwner(owner, id)
        .then(
          (v) => this.resolve(id, v),
          (err: unknown) => this.resolve(id, lostValue(id, err)),
        )
        .catch((err: unknown) => this.resolve(id, lostValue(id, err)));
    }
    this.entry(id).waiters.push(then);
  }

  /**
   * A local path for a file value, fetching it from the agent that holds it when needed (counted).
   * `keep`: a process here gets the path, so the copy stays (else it goes with its tasks).
   */
  localPath(id: string, v: Extract<ObjValue, { kind: 'file' }>, keep = false): Promise<string> {
    if (keep && v.node !== this.nodeId()) this.served.add(id);
    if (v.node === this.nodeId() || (this.copies.has(id) && !this.fetching.has(id))) return Promise.resolve(this.filePath(id));
    let f = this.fetching.get(id);
    if (!f) {
      if (!this.budget.store(v.size, `a copy of object ${id} (${formatBytes(v.size)})`)) return Promise.reject(new Error(this.budget.over ?? 'the job is over its share'));
      const p = this.dirs.place(id, v.size);
      this.copies.set(id, v.size);
      f = this.fetchRemote(v.node, id, p).then(
        () => p,
        (err: unknown) => {
          this.copies.delete(id);
          this.dirs.forget(id);
          this.budget.unstore(v.size);
          throw err;
        },
      );
      f.finally(() => {
        this.fetching.delete(id);
        // Dropped while it was being fetched: it goes now.
        if (this.released.has(id)) this.drop(id);
      }).catch(() => undefined);
      this.fetching.set(id, f);
    }
    return f;
  }

  /** A value as it travels between agents (an error's exception object only while small: its message and traceback always). */
  toRelay(v: ObjValue): RelayValue {
    if (v.kind === 'inline') return { kind: 'inline', data: v.data.toString('base64') };
    if (v.kind === 'file') return { kind: 'file', node: v.node, size: v.size };
    return {
      kind: 'error',
      error: v.error,
      data: v.data.length <= INLINE_LIMIT ? v.data.toString('base64') : '',
    };
  }

  /**
   * Object `id`'s value kept in a file of this node's store from now on (an inline value that must
   * travel by location); the value as it stands.
   */
  toFile(id: string): ObjValue | null {
    const e = this.entries.get(id);
    const v = e?.value ?? null;
    if (!e || !v || v.kind !== 'inline') return v;
    if (!this.budget.store(v.data.length, `object ${id}`)) return v;
    const tmp = this.tmpPath(this.dirs.place(id, v.data.length));
    try {
      fs.writeFileSync(tmp, v.data, { mode: 0o644 });
      fs.renameSync(tmp, this.filePath(id));
    } catch {
      fs.rmSync(tmp, { force: true });
      this.dirs.forget(id);
      this.budget.unstore(v.data.length);
      return v;
    }
    this.budget.release(v.data.length);
    e.value = { kind: 'file', node: this.nodeId(), size: v.data.length };
    return e.value;
  }

  // ---- lifetime -------------------------------------------------------------------------------

  /** Tasks here need these objects (as arguments): none is freed before they are done. */
  pin(ids: readonly string[]): void {
    for (const id of ids) this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
  }

  /** A task that pinned these is done with them. */
  unpin(ids: readonly string[]): void {
    for (const id of ids) {
      const n = (this.pins.get(id) ?? 0) - 1;
      if (n > 0) {
        this.pins.set(id, n);
        continue;
      }
      this.pins.delete(id);
      if (this.released.has(id)) this.drop(id);
      else this.evictCopy(id);
    }
  }

  /** Their owner holds no reference to these any more: each goes once it is ready and no task here needs it. */
  release(ids: readonly string[]): void {
    for (const id of ids) {
      if (!this.entries.has(id)) continue;
      this.released.add(id);
      this.drop(id);
    }
  }

  /** Free object `id` (its record, its bytes in memory or its file, and what they counted) if nothing needs it now. */
  private drop(id: string): void {
    const e = this.entries.get(id);
    if (!e) return void this.released.delete(id);
    if (!e.value || e.waiters.length > 0 || this.pins.has(id) || this.fetching.has(id)) return;
    this.released.delete(id);
    this.served.delete(id);
    this.entries.delete(id);
    this.budget.release(ENTRY_COST);
    const v = e.value;
    if (v.kind !== 'file') return this.budget.release(v.data.length);
    if (v.node !== this.nodeId()) {
      this.removeCopy(id);
      return this.freeRemote(v.node, id);
    }
    if (this.dirs.has(id)) {
      this.dirs.unlink(id);
      this.budget.unstore(v.size);
    }
  }

  /** A copy of another node's object that only tasks' arguments needed: it goes (fetched again if asked for). */
  private evictCopy(id: string): void {
    if (!this.served.has(id) && !this.fetching.has(id)) this.removeCopy(id);
  }

  private removeCopy(id: string): void {
    const size = this.copies.get(id);
    if (size === undefined) return;
    this.copies.delete(id);
    this.dirs.unlink(id);
    this.budget.unstore(size);
  }

  remove(): void {
    for (const e of this.entries.values()) for (const w of e.waiters) w(lostValue('', new Error('the job ended')));
    this.entries.clear();
    this.dirs.remove();
  }
}

function overValue(id: string, budget: JobBudget): ObjValue {
  return errorValue('ObjectLostError', `object ${id} was not kept: ${budget.over ?? 'the job is over its share'}`, '');
}

function lostValue(id: string, err: unknown): ObjValue {
  return errorValue('ObjectLostError', `object ${id} could not be retrieved: ${(err as Error).message}`, '');
}
