/**
 * What a worker's result or yield becomes: the task's object (or, for a task of several returns,
 * one object per value, `<id>_<i>`, and None as the task's own), or its error.
 */
import { returnId, type ErrorInfo } from '../../shared/protocol/index.js';
import type { ObjValue } from './objects.js';
import type { Task } from './jobState.js';

export interface ResultMessage {
  ok: boolean;
  error?: ErrorInfo;
  returns?: number[];
  retryable?: boolean;
}

/** A yielded value: its bytes, the value they were already stored as, or its error. */
export type YieldedValue = Buffer | ObjValue | { ok: false; error: ErrorInfo; data: Buffer };

/** `pickle.dumps(None, protocol=5)`: the value of a task whose results are its separate returns. */
const PICKLED_NONE = Buffer.from([0x80, 0x05, 0x4e, 0x2e]);

export function taskError(type: string, message: string, task: Task): ErrorInfo {
  return { type, message, traceback: '', task: task.spec.name };
}

/** The value of a task's own object, once its worker reported (its returns are resolved as a side effect). */
export function resultValue(task: Task, msg: ResultMessage, payload: Buffer | ObjValue): ObjValue {
  const { job, spec } = task;
  if (!Buffer.isBuffer(payload)) return payload;
  if (!msg.ok) return { kind: 'error', error: msg.error ?? taskError('TaskError', 'the task failed', task), data: payload };
  if (!msg.returns) return job.objects.store(spec.id, payload);
  let at = 0;
  msg.returns.forEach((n, i) => {
    const rid = returnId(spec.id, i);
    job.objects.resolve(rid, job.objects.store(rid, payload.subarray(at, at + n)));
    at += n;
  });
  return job.objects.store(spec.id, PICKLED_NONE);
}

export function yieldValue(task: Task, id: string, value: YieldedValue): ObjValue {
  if (Buffer.isBuffer(value)) return task.job.objects.store(id, value);
  if ('kind' in value) return value;
  return { kind: 'error', error: value.error, data: value.data };
}
