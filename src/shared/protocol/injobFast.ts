/**
 * The job socket's most frequent messages (submit, result, get, release), checked by hand: the
 * agent reads one or more of them per in-job task, and the zod schema costs several times what
 * these checks do. The schema stays the contract: `parseClientMessage` accepts a header here only
 * when it is one of these messages in its usual shape and every field passes exactly the schema's
 * checks, giving what the schema's parse gives (unknown keys stripped); anything else (another
 * message, a rarer field, any failure) goes to the schema, so a malformed frame gets the schema's
 * own error. test/injob-fast-parse.test.ts feeds both the same frames and holds them equal.
 */
import { OBJECT_ID_PATTERN } from './injobBase.js';
import { clientMessageSchema, type ClientMessage, type RefInfo, type SubmitSpec } from './injob.js';

type Rec = Record<string, unknown>;
/** Accepted here, and what the schema would give; null: ask the schema. */
type Fast<T> = T | null;

const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const KINDS = new Set(['task', 'actor_create', 'actor_call']);
/** The schema's array bounds for these messages. */
const MAX_TASKS = 100_000;
const MAX_DEPS = 10_000;
const MAX_REFS = 100_000;
const MAX_RELEASED = 100_000;

function isRec(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isId = (v: unknown): v is string => typeof v === 'string' && OBJECT_ID_PATTERN.test(v);
const isStr = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
const isNum = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;

function ref(v: unknown): Fast<RefInfo> {
  if (!isRec(v) || !isId(v.id)) return null;
  const owner = v.owner;
  if (owner !== '' && !(typeof owner === 'string' && NODE_ID.test(owner))) return null;
  return { id: v.id, owner };
}

function refs(v: unknown, max: number): Fast<RefInfo[]> {
  if (!Array.isArray(v) || v.length > max) return null;
  const out: RefInfo[] = new Array<RefInfo>(v.length);
  for (let i = 0; i < v.length; i++) {
    const r = ref(v[i]);
    if (!r) return null;
    out[i] = r;
  }
  return out;
}

function ids(v: unknown): Fast<string[]> {
  if (!Array.isArray(v) || v.length > MAX_RELEASED) return null;
  for (let i = 0; i < v.length; i++) if (!isId(v[i])) return null;
  return v.slice() as string[];
}

/** A submitted task without the rarer fields (several returns, placement, custom resources): those go to the schema. */
function spec(v: unknown): Fast<SubmitSpec> {
  if (!isRec(v)) return null;
  if (v.num_returns !== undefined || v.placement !== undefined) return null;
  const { id, kind, fn, name, resources: r, max_retries, retry_exceptions, args_len } = v;
  if (!isId(id) || typeof kind !== 'string' || !KINDS.has(kind) || !isStr(name, 256)) return null;
  if (!isRec(fn) || !isStr(fn.module, 4096) || !isStr(fn.name, 1024)) return null;
  const mainFile = fn.main_file;
  if (mainFile !== undefined && mainFile !== null && !isStr(mainFile, 4096)) return null;
  if (!isRec(r) || !isNum(r.cpus, 0, 100_000) || !isNum(r.gpus, 0, 1024) || !isInt(r.memory, 0, Number.MAX_SAFE_INTEGER)) return null;
  if (!isRec(r.custom) || Reflect.ownKeys(r.custom).length !== 0) return null;
  if (!isInt(max_retries, -1, 1000) || typeof retry_exceptions !== 'boolean' || !isInt(args_len, 0, Number.MAX_SAFE_INTEGER)) return null;
  const deps = refs(v.deps, MAX_DEPS);
  if (!deps) return null;
  const out: SubmitSpec = {
    id,
    kind: kind as SubmitSpec['kind'],
    fn: mainFile === undefined ? { module: fn.module, name: fn.name } : { module: fn.module, name: fn.name, main_file: mainFile },
    name,
    resources: { cpus: r.cpus, gpus: r.gpus, memory: r.memory, custom: {} },
    max_retries,
    retry_exceptions,
    deps,
    args_len,
  };
  if (v.actor_id !== undefined) {
    if (!isId(v.actor_id)) return null;
    out.actor_id = v.actor_id;
  }
  if (v.method !== undefined) {
    if (!isStr(v.method, 256)) return null;
    out.method = v.method;
  }
  if (v.max_concurrency !== undefined) {
    if (!isInt(v.max_concurrency, 1, 100_000)) return null;
    out.max_concurrency = v.max_concurrency;
  }
  if (v.max_restarts !== undefined) {
    if (!isInt(v.max_restarts, -1, 100_000)) return null;
    out.max_restarts = v.max_restarts;
  }
  return out;
}

function submit(h: Rec): Fast<ClientMessage> {
  const tasks = h.tasks;
  if (!Array.isArray(tasks) || tasks.length > MAX_TASKS) return null;
  const out: SubmitSpec[] = new Array<SubmitSpec>(tasks.length);
  for (let i = 0; i < tasks.length; i++) {
    const s = spec(tasks[i]);
    if (!s) return null;
    out[i] = s;
  }
  return { t: 'submit', tasks: out };
}

/** A task's result of one value (or a failure without its exception's details): the rest go to the schema. */
function result(h: Rec): Fast<ClientMessage> {
  const { task_id, ok, len } = h;
  if (h.error !== undefined || h.returns !== undefined || h.fatal !== undefined) return null;
  if (!isId(task_id) || typeof ok !== 'boolean' || !isInt(len, 0, Number.MAX_SAFE_INTEGER)) return null;
  const out: Extract<ClientMessage, { t: 'result' }> = { t: 'result', task_id, ok, len };
  if (h.retryable !== undefined) {
    if (typeof h.retryable !== 'boolean') return null;
    out.retryable = h.retryable;
  }
  if (h.file !== undefined) {
    if (h.file !== true) return null;
    out.file = true;
  }
  return out;
}

function fast(h: unknown): Fast<ClientMessage> {
  if (!isRec(h)) return null;
  switch (h.t) {
    case 'submit':
      return submit(h);
    case 'result':
      return result(h);
    case 'get': {
      const r = refs(h.refs, MAX_REFS);
      return r && { t: 'get', refs: r };
    }
    case 'release': {
      const objects = ids(h.objects);
      const actors = objects && ids(h.actors);
      return objects && actors && { t: 'release', objects, actors };
    }
    default:
      return null;
  }
}

/** A job socket header as a client message: the hand-written checks for the frequent ones, else the schema. */
export function parseClientMessage(header: unknown): ReturnType<typeof clientMessageSchema.safeParse> {
  const msg = fast(header);
  if (msg) return { success: true, data: msg };
  return clientMessageSchema.safeParse(header);
}

/** Only what the hand-written checks accept (null: the schema decides); for the test that holds the two equal. */
export const fastClientMessage = fast;
