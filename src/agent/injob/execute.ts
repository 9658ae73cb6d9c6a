/** The `execute` message that hands a task to its worker, with its arguments and inline dependencies as payload. */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { BY_VALUE_MODULE, type AgentMessage, type ExecuteDep } from '../../shared/protocol/index.js';
import type { Task, WorkerProc } from './jobState.js';

export interface ExecuteFrame {
  header: AgentMessage;
  payload: Buffer[];
}

/**
 * The `execute` message for `task` on worker `w`. A function by value is sent with the first task
 * of it the worker runs; the worker keeps it (worker.py), so later tasks name it only. Built at
 * once when every argument is in memory here (the usual small task: no promise); a promise when a
 * file must be found or fetched first.
 */
export function executeMessage(task: Task, w: WorkerProc): ExecuteFrame | Promise<ExecuteFrame> {
  if (task.argsFile) return withPaths(task, w);
  for (const d of task.spec.deps) if (task.deps.get(d.id)?.kind === 'file') return withPaths(task, w);
  const payload = [task.args];
  const deps: ExecuteDep[] = [];
  const fn = byValueFn(task);
  let sendsFn = false;
  for (const d of task.spec.deps) {
    const v = task.deps.get(d.id);
    if (!v || v.kind !== 'inline') continue;
    if (d.id === fn) {
      if (w.functions.has(fn)) continue;
      sendsFn = true;
    }
    deps.push({ id: d.id, state: 'value', len: v.data.length });
    payload.push(v.data);
  }
  if (sendsFn && fn !== null) w.functions.add(fn);
  return { header: header(task, deps, undefined), payload };
}

function byValueFn(task: Task): string | null {
  return task.spec.fn.module === BY_VALUE_MODULE && task.lang === 'python' ? task.spec.fn.name : null;
}

async function withPaths(task: Task, w: WorkerProc): Promise<ExecuteFrame> {
  const payload = [task.args];
  const deps: ExecuteDep[] = [];
  const fn = byValueFn(task);
  let sendsFn = false;
  for (const d of task.spec.deps) {
    const v = task.deps.get(d.id);
    if (!v || v.kind === 'error') continue;
    if (d.id === fn) {
      if (w.functions.has(fn)) continue;
      sendsFn = true;
    }
    if (v.kind === 'inline') {
      deps.push({ id: d.id, state: 'value', len: v.data.length });
      payload.push(v.data);
    } else {
      deps.push({ id: d.id, state: 'path', len: 0, path: await task.job.objects.localPath(d.id, v) });
    }
  }
  // Large arguments that came by location are read by the worker from their file here.
  const a = task.argsFile;
  const argsPath = a ? await task.job.objects.localPath(a.id, { kind: 'file', node: a.node, size: a.size }) : undefined;
  // Marked once nothing can fail any more: the message goes to the worker as it is.
  if (sendsFn && fn !== null) w.functions.add(fn);
  return { header: header(task, deps, argsPath), payload };
}

function header(task: Task, deps: ExecuteDep[], argsPath: string | undefined): AgentMessage {
  const s = task.spec;
  return {
    t: 'execute',
    task: {
      id: s.id,
      kind: s.kind,
      fn: s.fn,
      name: s.name,
      actor_id: s.actor_id,
      method: s.method,
      args_len: task.args.length,
      ...(argsPath ? { args_path: argsPath } : {}),
      deps,
      gpu_ids: task.holding?.gpuIds ?? [],
      attempt: task.attempt,
    },
  };
}

/** What `sendTask` gives back once a task is written. */
const SENT: Promise<void> = Promise.resolve();

/**
 * Write a task to its worker: at once when its arguments are all in memory here, else once their
 * files are found (resolved once written; `lost` when an argument could not be had).
 */
export function sendTask(w: WorkerProc, task: Task, log: Logger, lost: (err: Error) => void): Promise<void> {
  let m: ExecuteFrame | Promise<ExecuteFrame>;
  try {
    m = executeMessage(task, w);
  } catch (err) {
    m = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  if (!(m instanceof Promise)) {
    try {
      w.conn?.send(m.header, m.payload);
    } catch (err) {
      log.error({ err }, 'sending a task to its worker failed');
    }
    return SENT;
  }
  return m.then(
    guarded(log, 'sending a task to its worker', ({ header, payload }: ExecuteFrame) => w.conn?.send(header, payload)),
    guarded(log, 'failing a task whose arguments are lost', (err: unknown) => lost(err instanceof Error ? err : new Error(String(err)))),
  );
}
