/**
 * One job's objects on this agent: results of tasks it submitted or ran, values put here, and
 * copies fetched from other agents. Small values live in memory while the job's share of the
 * agent's memory allows, then on disk; large ones are files in the job's object directory, which
 * the job's sandboxes may read. Everything is counted against the job, and goes when it ends.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { injobSizes, OBJECT_ID_PATTERN, type ErrorInfo, type InjobErrorName, type RelayValue } from '../../shared/protocol/index.js';
import { formatBytes } from '../../shared/resources.js';
import type { JobBudget } from './budget.js';
import type { PayloadStream } from './frames.js';
import { ENTRY_COST } from './limits.js';

/** Values above this stay in the store of the agent that made them and are fetched on demand. */
export const INLINE_LIMIT = injobSizes.INLINE_LIMIT;

export type ObjValue =
  | { kind: 'inline'; data: Buffer }
  | { kind: 'file'; node: string; size: number }
  | { kind: 'error'; error: ErrorInfo; data: Buffer };

interface Entry {
  value: ObjValue | null;
  waiters: ((v: ObjValue) => void)[];
  /** Something here will produce it (a submitted task, a put): no second producer may take the id. */
  claimed: boolean;
}

export class ObjectTable {
  private readonly entries = new Map<string, Entry>();
  private readonly fetching = new Map<string, Promise<string>>();
  /** Values whose bytes are already counted against the job (made by `store`). */
  private readonly counted = new WeakSet<ObjValue>();

  constructor(
    readonly dir: string,
    private readonly nodeId: () => string,
    /** Copy a large object from the agent that holds it into `dest`. */
    private readonly fetchRemote: (node: string, id: string, dest: string) => Promise<void>,
    /** Ask an object's owner (another agent) how it stands, waiting for it to be ready. */
    private readonly askOwner: (owner: string, id: string) => Promise<ObjValue>,
    private readonly budget: JobBudget,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  }

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

  /** Where object `id` lives on disk: always a file directly inside this job's object directory. */
  filePath(id: string): string {
    return objectPath(this.dir, id);
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
      this.counted.add(v);
      return v;
    }
    if (!this.budget.store(data.length, `an object of ${formatBytes(data.length)}`)) return overValue(id, this.budget);
    const tmp = this.tmpPath(id);
    try {
      fs.writeFileSync(tmp, data, { mode: 0o644 });
      fs.renameSync(tmp, this.filePath(id));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      this.budget.unstore(data.length);
      return errorValue('ObjectLostError', `object ${id} could not be stored on node ${this.nodeId()}: ${(err as Error).message}`, '');
    }
    const v: ObjValue = { kind: 'file', node: this.nodeId(), size: data.length };
    this.counted.add(v);
    return v;
  }

  /**
   * A stream that writes object `id` to its file as the bytes arrive (a large put or result),
   * counted against the job's store; `value()` once it has ended. Null when the store is full (the
   * job is over its share) or the object has a value already.
   */
  writer(id: string, size: number): (PayloadStream & { value(): ObjValue }) | null {
    if (this.get(id) || !this.budget.store(size, `an object of ${formatBytes(size)}`)) return null;
    const tmp = this.tmpPath(id);
    const fd = fs.openSync(tmp, 'wx', 0o644);
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
          this.budget.unstore(size);
        }
        state = 'aborted';
      },
      value: () => {
        const v: ObjValue = { kind: 'file', node: this.nodeId(), size };
        this.counted.add(v);
        return v;
      },
    };
  }

  private tmpPath(id: string): string {
    return `${this.filePath(id)}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  }

  /** Object `id` is ready: its waiters hear now. The first value wins (a retried or resent one is the same object). */
  resolve(id: string, value: ObjValue): void {
    const e = this.entry(id);
    if (e.value) return;
    e.value = this.counted.has(value) ? value : this.admit(id, value);
    const waiters = e.waiters;
    e.waiters = [];
    for (const w of waiters) w(e.value);
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
    const e = this.entries.get(id);
    if (e?.value) return Promise.resolve(e.value);
    if (!e && owner && owner !== this.nodeId()) {
      this.entry(id);
      this.askOwner(owner, id)
        .then(
          (v) => this.resolve(id, v),
          (err: unknown) => this.resolve(id, lostValue(id, err)),
        )
        .catch((err: unknown) => this.resolve(id, lostValue(id, err)));
    }
    return new Promise((resolve) => this.entry(id).waiters.push(resolve));
  }

  /** A local path for a file value, fetching it from the agent that holds it when needed (counted against the job's store). */
  localPath(id: string, v: Extract<ObjValue, { kind: 'file' }>): Promise<string> {
    const p = this.filePath(id);
    if (v.node === this.nodeId() || fs.existsSync(p)) return Promise.resolve(p);
    let f = this.fetching.get(id);
    if (!f) {
      if (!this.budget.store(v.size, `a copy of object ${id} (${formatBytes(v.size)})`)) return Promise.reject(new Error(this.budget.over ?? 'the job is over its share'));
      f = this.fetchRemote(v.node, id, p).then(
        () => p,
        (err: unknown) => {
          this.budget.unstore(v.size);
          throw err;
        },
      );
      f.finally(() => this.fetching.delete(id)).catch(() => undefined);
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
    const tmp = this.tmpPath(id);
    try {
      fs.writeFileSync(tmp, v.data, { mode: 0o644 });
      fs.renameSync(tmp, this.filePath(id));
    } catch {
      fs.rmSync(tmp, { force: true });
      this.budget.unstore(v.data.length);
      return v;
    }
    this.budget.release(v.data.length);
    e.value = { kind: 'file', node: this.nodeId(), size: v.data.length };
    return e.value;
  }

  remove(): void {
    for (const e of this.entries.values()) for (const w of e.waiters) w(lostValue('', new Error('the job ended')));
    this.entries.clear();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * `dir/id`, for an id that passed its schema; checked again after resolution, so no id can name a
 * file outside `dir` whatever reached this far.
 */
export function objectPath(dir: string, id: string): string {
  if (!OBJECT_ID_PATTERN.test(id)) throw new Error(`invalid object id ${JSON.stringify(id.slice(0, 80))}`);
  const root = path.resolve(dir);
  const p = path.resolve(root, id);
  if (path.dirname(p) !== root) throw new Error(`object id ${JSON.stringify(id)} names a path outside its store`);
  return p;
}

export function fromRelay(v: RelayValue): ObjValue {
  if (v.kind === 'inline') return { kind: 'inline', data: Buffer.from(v.data, 'base64') };
  if (v.kind === 'file') return { kind: 'file', node: v.node, size: v.size };
  return { kind: 'error', error: v.error, data: Buffer.from(v.data, 'base64') };
}

/** A failed object made by raysub itself (not a task's own exception): its type is one of the contract's in-job error names. */
export function errorValue(type: InjobErrorName, message: string, task: string): ObjValue {
  return { kind: 'error', error: { type, message, traceback: '', task }, data: Buffer.alloc(0) };
}

/** The object of a task that was cancelled (TaskCancelledError where it is read). */
export function cancelledValue(task: { spec: { name: string } }): ObjValue {
  return errorValue('TaskCancelledError', `${task.spec.name} was cancelled`, task.spec.name);
}

function overValue(id: string, budget: JobBudget): ObjValue {
  return errorValue('ObjectLostError', `object ${id} was not kept: ${budget.over ?? 'the job is over its share'}`, '');
}

function lostValue(id: string, err: unknown): ObjValue {
  return errorValue('ObjectLostError', `object ${id} could not be retrieved: ${(err as Error).message}`, '');
}
