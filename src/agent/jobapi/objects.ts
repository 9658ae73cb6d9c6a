/**
 * One job's objects on this agent: results of tasks it submitted or ran, values put here, and
 * copies fetched from other agents. Small values live in memory; large ones are files in the job's
 * object directory, which the job's sandboxes may read. Everything goes when the job ends.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { OBJECT_ID_PATTERN, type ErrorInfo, type RelayValue } from '../../shared/protocol/index.js';

/** Values above this stay in the store of the agent that made them and are fetched on demand. */
export const INLINE_LIMIT = 100 * 1024;

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
  private inlineBytes = 0;

  constructor(
    readonly dir: string,
    private readonly nodeId: () => string,
    /** Copy a large object from the agent that holds it into `dest`. */
    private readonly fetchRemote: (node: string, id: string, dest: string) => Promise<void>,
    /** Ask an object's owner (another agent) how it stands, waiting for it to be ready. */
    private readonly askOwner: (owner: string, id: string) => Promise<ObjValue>,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      e = { value: null, waiters: [], claimed: false };
      this.entries.set(id, e);
    }
    return e;
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

  /** Store bytes as a value: in memory when small (and memory allows), else as a file here. */
  store(id: string, data: Buffer): ObjValue {
    if (data.length <= INLINE_LIMIT && this.inlineBytes < 512 * 1024 * 1024) {
      this.inlineBytes += data.length;
      return { kind: 'inline', data };
    }
    const tmp = `${this.filePath(id)}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, data, { mode: 0o644 });
    fs.renameSync(tmp, this.filePath(id));
    return { kind: 'file', node: this.nodeId(), size: data.length };
  }

  resolve(id: string, value: ObjValue): void {
    const e = this.entry(id);
    if (e.value) return; // first result wins (a retried or resent one is the same object)
    e.value = value;
    const waiters = e.waiters;
    e.waiters = [];
    for (const w of waiters) w(value);
  }

  /** The value once ready; for an object owned elsewhere, asks its owner. */
  whenReady(id: string, owner: string): Promise<ObjValue> {
    const e = this.entries.get(id);
    if (e?.value) return Promise.resolve(e.value);
    if (!e && owner && owner !== this.nodeId()) {
      this.entry(id);
      void this.askOwner(owner, id).then(
        (v) => this.resolve(id, v),
        (err: unknown) => this.resolve(id, lostValue(id, err)),
      );
    }
    return new Promise((resolve) => this.entry(id).waiters.push(resolve));
  }

  /** A local path for a file value, fetching it from the agent that holds it when needed. */
  localPath(id: string, v: Extract<ObjValue, { kind: 'file' }>): Promise<string> {
    const p = this.filePath(id);
    if (v.node === this.nodeId() || fs.existsSync(p)) return Promise.resolve(p);
    let f = this.fetching.get(id);
    if (!f) {
      f = this.fetchRemote(v.node, id, p).then(() => p);
      f.finally(() => this.fetching.delete(id)).catch(() => undefined);
      this.fetching.set(id, f);
    }
    return f;
  }

  toRelay(v: ObjValue): RelayValue {
    if (v.kind === 'inline') return { kind: 'inline', data: v.data.toString('base64') };
    if (v.kind === 'file') return { kind: 'file', node: v.node, size: v.size };
    return { kind: 'error', error: v.error, data: v.data.toString('base64') };
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

export function errorValue(type: string, message: string, task: string): ObjValue {
  return { kind: 'error', error: { type, message, traceback: '', task }, data: Buffer.alloc(0) };
}

function lostValue(id: string, err: unknown): ObjValue {
  return errorValue('ObjectLostError', `object ${id} could not be retrieved: ${(err as Error).message}`, '');
}
