/**
 * A warm worker for Node jobs: `node <agent>/node_modules/raysub/worker.js`, started by the agent.
 * Runs the tasks it is sent one at a time (awaiting async ones), or holds one actor instance.
 */
import fs from 'node:fs';
import type { ExecuteTask } from '../../shared/protocol/injob.js';
import { deserialize, init, markWorker, moduleUrl, serialize } from './index.js';

type Task = ExecuteTask;

async function find(ref: { module: string; name: string }): Promise<unknown> {
  const mod = (await import(moduleUrl(ref.module))) as Record<string, unknown>;
  const target = mod[ref.name] as { _fn?: unknown; _cls?: unknown } | undefined;
  if (target === undefined) throw new Error(`module ${ref.module} exports no ${ref.name}`);
  return target._fn ?? target._cls ?? target;
}

function argumentsOf(task: Task, payload: Buffer): unknown[] {
  // Large arguments that came from another node are in a file of this node's object store.
  const args = deserialize(task.args_path ? fs.readFileSync(task.args_path) : payload.subarray(0, task.args_len)) as unknown[];
  const values = new Map<string, unknown>();
  let at = task.args_len;
  for (const d of task.deps) {
    if (d.state === 'value') {
      values.set(d.id, deserialize(payload.subarray(at, at + d.len)));
      at += d.len;
    } else values.set(d.id, deserialize(fs.readFileSync(d.path ?? '')));
  }
  return args.map((a) => {
    const dep = (a as { __raysub_dep__?: string } | null)?.__raysub_dep__;
    return dep !== undefined ? values.get(dep) : a;
  });
}

async function main(): Promise<void> {
  markWorker();
  const conn = await init();
  let instance: Record<string, (...a: unknown[]) => unknown> | null = null;
  const queue: [Task, Buffer][] = [];
  let running = false;
  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [task, payload] = next;
      process.env.CUDA_VISIBLE_DEVICES = task.gpu_ids.join(',');
      try {
        const args = argumentsOf(task, payload);
        let result: unknown;
        if (task.kind === 'actor_call') {
          const m = instance?.[task.method ?? ''];
          if (typeof m !== 'function') throw new TypeError(`the actor has no method ${task.method ?? ''}`);
          result = await m.apply(instance, args);
        } else {
          const target = await find(task.fn);
          if (task.kind === 'actor_create') {
            instance = new (target as new (...a: unknown[]) => Record<string, (...a: unknown[]) => unknown>)(...args);
            result = null;
          } else result = await (target as (...a: unknown[]) => unknown)(...args);
        }
        const data = serialize(result);
        conn.flush();
        conn.send({ t: 'result', task_id: task.id, ok: true, len: data.length }, [data]);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        conn.flush();
        conn.send({ t: 'result', task_id: task.id, ok: false, len: 0, error: { type: e.name, message: e.message.slice(0, 100_000), traceback: (e.stack ?? '').slice(0, 200_000), task: task.name } });
      }
    }
    running = false;
  };
  conn.onExecute = (task, payload) => {
    queue.push([task, payload]);
    void run();
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`raysub worker: ${(err as Error).message}\n`);
  process.exit(1);
});
