/** The `execute` message that hands a task to its worker, with its arguments and inline dependencies as payload. */
import { BY_VALUE_MODULE, type AgentMessage, type ExecuteDep } from '../../shared/protocol/index.js';
import type { Task, WorkerProc } from './jobState.js';

/**
 * The `execute` message for `task` on worker `w`. A function by value is sent with the first task
 * of it the worker runs; the worker keeps it (worker.py), so later tasks name it only.
 */
export async function executeMessage(task: Task, w: WorkerProc): Promise<{ header: AgentMessage; payload: Buffer[] }> {
  const payload = [task.args];
  const deps: ExecuteDep[] = [];
  const fn = task.spec.fn.module === BY_VALUE_MODULE && task.lang === 'python' ? task.spec.fn.name : null;
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
  const s = task.spec;
  // Large arguments that came by location are read by the worker from their file here.
  const a = task.argsFile;
  const argsPath = a ? await task.job.objects.localPath(a.id, { kind: 'file', node: a.node, size: a.size }) : undefined;
  // Marked once nothing can fail any more: the message goes to the worker as it is.
  if (sendsFn && fn !== null) w.functions.add(fn);
  const header: AgentMessage = {
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
  return { header, payload };
}
