/** The values of a job's objects on this agent, and the failed objects raysub makes itself. */
import type { ErrorInfo, InjobErrorName, RelayValue } from '../../shared/protocol/index.js';

export type ObjValue =
  | { kind: 'inline'; data: Buffer }
  | { kind: 'file'; node: string; size: number }
  | { kind: 'error'; error: ErrorInfo; data: Buffer };

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

