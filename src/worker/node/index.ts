/**
 * raysub's in-job API for Node jobs: remote functions and actor classes exported from modules,
 * arguments and results by structured clone (v8.serialize), get/put/wait, actors.
 *
 *   import * as raysub from 'raysub';
 *   export const square = raysub.remote(import.meta, function square(x) { return x * x; });
 *   if (raysub.isMain(import.meta)) console.log(await raysub.get([1, 2, 3].map((x) => square.remote(x))));
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { Connection, type Resolved } from './conn.js';
import { ERRORS, SIZES } from './contract.js';

export interface RemoteOptions {
  /** The export this function or class is reachable by (default: its own name). */
  name?: string;
  numCpus?: number;
  numGpus?: number;
  memory?: number;
  resources?: Record<string, number>;
  maxRetries?: number;
  retryExceptions?: boolean;
}

export class RaysubError extends Error {
  override name = 'RaysubError';
}
export class TaskError extends RaysubError {
  override name = 'TaskError';
  constructor(
    readonly task: string,
    readonly causeType: string,
    readonly remoteStack: string,
    message: string,
  ) {
    super(`task ${task} failed: ${causeType}: ${message}\n\n${remoteStack}`);
  }
}
export class ActorDiedError extends RaysubError {
  override name = 'ActorDiedError';
}
export class WorkerCrashedError extends RaysubError {
  override name = 'WorkerCrashedError';
}
export class ObjectLostError extends RaysubError {
  override name = 'ObjectLostError';
}
export class GetTimeoutError extends RaysubError {
  override name = 'GetTimeoutError';
}
export class UnschedulableError extends RaysubError {
  override name = 'UnschedulableError';
}
export class TaskCancelledError extends RaysubError {
  override name = 'TaskCancelledError';
}

/** The exception classes the contract's in-job error names map to (contract.ts, ERRORS[name].node). */
const errorClasses: Record<string, new (message: string) => RaysubError> = { RaysubError, ActorDiedError, WorkerCrashedError, ObjectLostError, UnschedulableError, TaskCancelledError };

/** @internal The error a `get` rejects with for a failed object. */
export function errorOf(e: { type: string; message: string; traceback: string; task: string }): RaysubError {
  const system = ERRORS[e.type]?.node;
  const cls = system ? errorClasses[system] : undefined;
  return cls ? new cls(e.message) : new TaskError(e.task, e.type, e.traceback, e.message);
}

export class ObjectRef {
  readonly __raysub_ref__ = true;
  constructor(
    readonly id: string,
    readonly owner: string,
  ) {}
}

const state: { conn: Promise<Connection> | null; inWorker: boolean } = { conn: null, inWorker: false };
const prefix = crypto.randomBytes(6).toString('hex');
let counter = 0;
const newId = (): string => `${prefix}${(++counter).toString(16)}`;

/** @internal the worker marks its process before connecting. */
export function markWorker(): void {
  state.inWorker = true;
}

/** Connect to this job's agent (done automatically on first use). */
export function init(): Promise<Connection> {
  if (!state.conn) {
    const sock = process.env.RAYSUB_TASK_SOCKET;
    const token = process.env.RAYSUB_JOB_TOKEN;
    if (!sock || !token) {
      return Promise.reject(new RaysubError('raysub.init(): this process is not running inside a raysub job; run it with `raysub job submit --working-dir . -- node main.mjs`'));
    }
    const hello = { t: 'hello', token, role: state.inWorker ? 'worker' : 'driver', lang: 'node', ...(state.inWorker ? { worker_id: process.env.RAYSUB_WORKER_ID } : {}) };
    state.conn = Connection.open(sock, hello);
  }
  return state.conn;
}

/** Whether this module is the job's entrypoint (false when a worker imports it to find a function). */
export function isMain(meta: ImportMeta): boolean {
  return !state.inWorker && Boolean(process.argv[1]) && fileURLToPath(meta.url) === path.resolve(process.argv[1] ?? '');
}

export async function shutdown(): Promise<void> {
  const c = state.conn;
  state.conn = null;
  if (c) (await c).close();
}

function moduleRef(meta: ImportMeta): string {
  const file = fileURLToPath(meta.url);
  const cwd = process.cwd();
  return file.startsWith(cwd + path.sep) ? path.relative(cwd, file) : file;
}

/** @internal where a worker finds a module named by a submitter. */
export function moduleUrl(ref: string): string {
  return pathToFileURL(path.isAbsolute(ref) ? ref : path.resolve(process.cwd(), ref)).href;
}

function resources(o: RemoteOptions, defaultCpus: number): Record<string, unknown> {
  return { cpus: o.numCpus ?? defaultCpus, gpus: o.numGpus ?? 0, memory: o.memory ?? 0, custom: o.resources ?? {} };
}

function pack(args: unknown[]): { data: Buffer; deps: { id: string; owner: string }[] } {
  const deps: { id: string; owner: string }[] = [];
  const swapped = args.map((arg) => {
    // A ref that travelled inside a value arrives as a plain object with the same fields.
    const a = isRef(arg) ? asRef(arg) : arg;
    if (a instanceof ObjectRef) {
      if (!deps.some((d) => d.id === a.id)) deps.push({ id: a.id, owner: a.owner });
      return { __raysub_dep__: a.id };
    }
    return a;
  });
  return { data: serialize(swapped), deps };
}

const ACTOR_MARK = '__raysub_actor__';
const ACTOR_INFO = Symbol('raysub actor info');

function actorInfo(h: ActorHandle): ActorInfo {
  return (h as unknown as Record<symbol, ActorInfo>)[ACTOR_INFO] as ActorInfo;
}
const MAX_DEPTH = 64;

interface ActorInfo {
  id: string;
  owner: string;
  fn: { module: string; name: string };
  cls: string;
}

/**
 * Values to bytes (structured clone). Actor handles are proxies, which cannot be cloned: anywhere
 * in a value (arrays, plain objects, Maps, Sets) they travel as a marker the other side revives.
 */
export function serialize(value: unknown): Buffer {
  try {
    return v8.serialize(value);
  } catch (err) {
    // Not cloneable as it is: with its actor handles as markers, or else the original error.
    const mapped = mapHandles(value, 0, (h) => ({ [ACTOR_MARK]: actorInfo(h) }));
    try {
      return v8.serialize(mapped);
    } catch {
      throw err;
    }
  }
}

/** Bytes to a value, reviving the actor handles it holds. */
export function deserialize(data: Buffer): unknown {
  const value: unknown = v8.deserialize(data);
  if (!data.includes(ACTOR_MARK)) return value;
  return mapHandles(value, 0, null);
}

function isHandle(v: unknown): v is ActorHandle {
  return typeof v === 'object' && v !== null && Boolean((v as { __actor__?: unknown }).__actor__);
}

/** Replace handles by markers (`toMark`), or markers by handles (`toMark` null), in a value. */
function mapHandles(v: unknown, depth: number, toMark: ((h: ActorHandle) => unknown) | null): unknown {
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return v;
  if (toMark && isHandle(v)) return toMark(v);
  if (!toMark && (v as Record<string, unknown>)[ACTOR_MARK]) {
    const i = (v as Record<string, ActorInfo>)[ACTOR_MARK] as ActorInfo;
    return actorHandle(i.id, () => i.owner, i.fn, i.cls);
  }
  const next = (x: unknown): unknown => mapHandles(x, depth + 1, toMark);
  if (Array.isArray(v)) return v.map(next);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [next(k), next(x)]));
  if (v instanceof Set) return new Set([...v].map(next));
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, next(x)]));
}

function submit(kind: string, fn: { module: string; name: string }, name: string, opts: RemoteOptions, defaultCpus: number, defaultRetries: number, args: unknown[], extra: Record<string, unknown> = {}, id = newId()): ObjectRef {
  const { data, deps } = pack(args);
  const spec = {
    id,
    kind,
    fn,
    name,
    resources: resources(opts, defaultCpus),
    max_retries: opts.maxRetries ?? defaultRetries,
    retry_exceptions: opts.retryExceptions ?? false,
    deps,
    args_len: data.length,
    ...extra,
  };
  const ref = new ObjectRef(id, '');
  const p = init().then((c) => {
    (ref as { owner: string }).owner = c.nodeId;
    c.submit(spec, data);
  });
  pending.add(p);
  void p.finally(() => pending.delete(p)).catch(() => undefined);
  return ref;
}
const pending = new Set<Promise<void>>();

export interface RemoteFunction<A extends unknown[], R> {
  remote(...args: { [K in keyof A]: A[K] | ObjectRef }): ObjectRef;
  options(o: RemoteOptions): RemoteFunction<A, R>;
  readonly _fn: (...args: A) => R;
}

export interface ActorClass<A extends unknown[]> {
  remote(...args: A): ActorHandle;
  options(o: RemoteOptions): ActorClass<A>;
  readonly _cls: new (...args: A) => unknown;
}

export type ActorHandle = Record<string, { remote(...args: unknown[]): ObjectRef }> & { readonly __actor__: { id: string; owner: string } };

/** Make an exported function or class remote: `export const f = remote(import.meta, function f() {...})`. */
export function remote<A extends unknown[], R>(meta: ImportMeta, fn: (...args: A) => R, opts?: RemoteOptions): RemoteFunction<A, R>;
export function remote<A extends unknown[]>(meta: ImportMeta, cls: new (...args: A) => unknown, opts?: RemoteOptions): ActorClass<A>;
export function remote(meta: ImportMeta, target: ((...a: never[]) => unknown) | (new (...a: never[]) => unknown), opts: RemoteOptions = {}): unknown {
  const ref = { module: moduleRef(meta), name: opts.name ?? target.name };
  if (!ref.name) throw new RaysubError('remote(): give the function or class a name (or options.name): it is found by its export name');
  const isClass = /^class[\s{]/.test(Function.prototype.toString.call(target));
  if (isClass) {
    const make = (o: RemoteOptions): ActorClass<unknown[]> => ({
      _cls: target as unknown as new (...args: unknown[]) => unknown,
      options: (more) => make({ ...o, ...more }),
      remote: (...args) => {
        const id = newId();
        const created = submit('actor_create', ref, `${ref.name}.constructor`, o, 0, 0, args, { actor_id: id }, id);
        return actorHandle(id, () => created.owner, ref, ref.name);
      },
    });
    return make(opts);
  }
  const make = (o: RemoteOptions): RemoteFunction<unknown[], unknown> => ({
    _fn: target as (...args: unknown[]) => unknown,
    options: (more) => make({ ...o, ...more }),
    remote: (...args) => submit('task', ref, ref.name, o, 1, 3, args),
  });
  return make(opts);
}

/** A handle to an actor; it can be passed to tasks and other actors, inside any value. */
function actorHandle(id: string, owner: () => string, fn: { module: string; name: string }, cls: string): ActorHandle {
  return new Proxy({} as ActorHandle, {
    get(_t, prop) {
      if (prop === '__actor__') return { id, get owner() { return owner(); } };
      if (prop === ACTOR_INFO) return { id, owner: owner(), fn, cls };
      // Not methods: `then` (a handle is not a promise), and the library's own markers.
      if (typeof prop !== 'string' || prop === 'then' || prop.startsWith('__raysub')) return undefined;
      return { remote: (...args: unknown[]) => submit('actor_call', fn, `${cls}.${prop}`, { numCpus: 0 }, 0, 0, args, { actor_id: id, method: prop }) };
    },
  });
}

/** Kill an actor: its process ends; its pending and future calls fail with ActorDiedError. */
export async function kill(handle: ActorHandle): Promise<void> {
  const c = await init();
  await Promise.all(pending);
  c.flush();
  c.send({ t: 'kill_actor', actor: { id: handle.__actor__.id, owner: handle.__actor__.owner || c.nodeId } });
}

/** Store a value in this node's object store. */
export async function put(value: unknown): Promise<ObjectRef> {
  const c = await init();
  await Promise.all(pending);
  c.flush();
  const id = newId();
  const data = serialize(value);
  c.send({ t: 'put', id, len: data.length }, [data]);
  if (data.length <= SIZES.INLINE_LIMIT) c.objects.set(id, { state: 'value', data });
  return new ObjectRef(id, c.nodeId);
}

function decode(r: Resolved, id: string): unknown {
  if (r.state === 'value') return deserialize(r.data);
  if (r.state === 'path' && r.path) return deserialize(fs.readFileSync(r.path));
  if (r.state === 'error') {
    return errorOf(r.error ?? { type: 'TaskError', message: '', traceback: '', task: '?' });
  }
  return new ObjectLostError(`object ${id} is not available here`);
}

function isRef(r: unknown): boolean {
  return r instanceof ObjectRef || Boolean((r as { __raysub_ref__?: boolean } | null)?.__raysub_ref__);
}

function asRef(r: unknown): ObjectRef {
  if (r instanceof ObjectRef) return r;
  const o = r as { __raysub_ref__?: boolean; id?: string; owner?: string } | null;
  if (o?.__raysub_ref__ && o.id) return new ObjectRef(o.id, o.owner ?? '');
  throw new TypeError('get() takes an ObjectRef or an array of them');
}

async function awaitRefs(refs: ObjectRef[], need: number, timeoutMs: number | null, local: boolean): Promise<Connection> {
  const c = await init();
  await Promise.all(pending);
  c.flush();
  const isReady = (r: ObjectRef): boolean => {
    const o = c.objects.get(r.id);
    return o !== undefined && !(local && o.state === 'remote');
  };
  c.request(refs.filter((r) => (!c.objects.has(r.id) && !c.owned.has(r.id)) || (local && c.objects.get(r.id)?.state === 'remote')));
  const count = (): number => refs.filter(isReady).length;
  const blocked = state.inWorker && count() < need;
  if (blocked) c.send({ t: 'blocked' });
  try {
    const ok = await c.until(() => {
      if (local) {
        const far = refs.filter((r) => c.objects.get(r.id)?.state === 'remote' && !c.requested.has(r.id));
        if (far.length) c.request(far);
      }
      return count() >= need;
    }, timeoutMs);
    if (!ok) throw new GetTimeoutError(`get() timed out after ${timeoutMs} ms`);
    return c;
  } finally {
    if (blocked) c.send({ t: 'unblocked' });
  }
}

/** The value of a ref (or the values of an array of refs); rejects with the task's error. */
export async function get<T = unknown>(refs: ObjectRef | ObjectRef[], opts: { timeoutMs?: number } = {}): Promise<T> {
  const single = !Array.isArray(refs);
  const list = (single ? [refs] : refs).map(asRef);
  const c = await awaitRefs(list, list.length, opts.timeoutMs ?? null, true);
  const values = list.map((r) => {
    const v = decode(c.objects.get(r.id) as Resolved, r.id);
    if (v instanceof RaysubError) throw v;
    return v;
  });
  return (single ? values[0] : values) as T;
}

/** [ready, notReady]: the first `numReturns` refs that are ready (in the order given). */
export async function wait(refs: ObjectRef[], opts: { numReturns?: number; timeoutMs?: number } = {}): Promise<[ObjectRef[], ObjectRef[]]> {
  const n = opts.numReturns ?? 1;
  if (n > refs.length) throw new RangeError(`numReturns (${n}) is larger than the number of refs (${refs.length})`);
  const c = await awaitRefs(refs, n, opts.timeoutMs ?? null, false).catch((err: unknown) => {
    if (err instanceof GetTimeoutError) return null;
    throw err;
  });
  const conn = c ?? (await init());
  const ready: ObjectRef[] = [];
  const notReady: ObjectRef[] = [];
  for (const r of refs) (conn.objects.has(r.id) && ready.length < n ? ready : notReady).push(r);
  return [ready, notReady];
}
