/** What the head's in-job hub counts of a delivery: its size and its job. */
import type { InjobDelivery, RelayTask } from '../shared/protocol/index.js';

/** About what a delivery adds to the JSON the head holds and sends. */
export function deliveryBytes(msg: InjobDelivery): number {
  if (msg.type === 'task') return taskBytes(msg.task);
  if (msg.type === 'result') return 300 + (msg.result.value.kind === 'file' ? 0 : msg.result.value.data.length);
  if (msg.type === 'log') return 100 + msg.data.length;
  return 100;
}

/** About what a relayed task adds (its arguments and dependencies inline). */
export function taskBytes(t: RelayTask): number {
  const args = typeof t.args === 'string' ? t.args.length : 100;
  return 2048 + args + t.deps.reduce((n, d) => n + 100 + (d.value.kind === 'file' ? 0 : d.value.data.length), 0);
}

/** The job a delivery belongs to. */
export function deliveryJob(msg: InjobDelivery): string {
  if (msg.type === 'task') return msg.task.job_id;
  if (msg.type === 'result') return msg.result.job_id;
  return msg.job_id;
}
