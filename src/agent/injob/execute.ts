/** The `execute` message that hands a task to its worker, with its arguments and inline dependencies as payload. */
import type { AgentMessage, ExecuteDep } from '../../shared/protocol/index.js';
import type { Task } from './jobState.js';

export async function executeMessage(task: Task): Promise<{ header: AgentMessage; payload: Buffer[] }> {
  const payload = [task.args];
  const deps: ExecuteDep[] = [];
  for (const d of task.spec.deps) {
    const v = task.deps.get(d.id);
    if (!v || v.kind === 'error') continue;
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
