/**
 * Questions of a job's processes (`request` on the job socket): the agent answers what it knows
 * (the cluster as the head last described it, the job's CPU limit here) and passes the rest (named
 * actors, placement groups: job-wide, kept by the head) to the head in its next report, answering
 * the process when the head's answer comes back. A question the head has not answered in time
 * gets an error, so no process waits forever; a job has at most MAX_PENDING questions waiting.
 */
import type { ClientCall, HeadCall, InjobReply, InjobRequest, ReplyError, Usage } from '../../shared/protocol/index.js';
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { fromUnits } from '../../shared/resources.js';

/** A process waits this long for the head's answer. */
const HEAD_ANSWER_MS = 60_000;
/** Questions of one job waiting for the head at once. */
export const MAX_PENDING = 1000;
/** A named actor's pickled handle (what the head keeps per name). */
export const MAX_HANDLE_BYTES = 64 * 1024;

export interface ReplyBody {
  ok: boolean;
  value?: unknown;
  error?: ReplyError;
}

export interface ReplyTarget {
  reply(reqId: number, body: ReplyBody, data?: Buffer): void;
  readonly closed: boolean;
}

/** Resources as a process reads them: CPUs and GPUs as numbers, memory in bytes. */
export interface Resources {
  cpus: number;
  gpus: number;
  memory: number;
  custom: Record<string, number>;
}

export interface ClusterNode {
  node_id: string;
  name: string;
  alive: boolean;
  address: string;
  total: Resources;
  free: Resources;
}

export interface RequestDeps {
  log: Logger;
  /** Queue a question for the head (sent with the next report, which is woken). */
  toHead(r: InjobRequest): void;
  /** The cluster as the head last described it. */
  cluster(): ClusterNode[];
  /** Set a job's CPU limit on this node (`ray.init(num_cpus=n)`). */
  limitCpus(jobId: string, cpus: number): void;
  /** The job's CPU limit here and what of it is free now (CPUs), or null without one. */
  cpuLimit(jobId: string): { limit: number; free: number } | null;
}

interface Pending {
  jobId: string;
  target: ReplyTarget;
  reqId: number;
  timer: NodeJS.Timeout;
}

export class Requests {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly perJob = new Map<string, number>();

  constructor(private readonly d: RequestDeps) {}

  /** A process asked `call` (`payload`: a named actor's pickled handle). */
  ask(jobId: string, target: ReplyTarget, reqId: number, call: ClientCall, payload: Buffer): void {
    switch (call.op) {
      case 'cluster': {
        const limit = this.d.cpuLimit(jobId);
        return target.reply(reqId, { ok: true, value: { nodes: this.d.cluster(), ...(limit ? { cpu_limit: limit.limit, cpu_free_under_limit: limit.free } : {}) } });
      }
      case 'limit':
        this.d.limitCpus(jobId, call.cpus);
        return target.reply(reqId, { ok: true });
      case 'name_actor': {
        if (payload.length === 0 || payload.length > MAX_HANDLE_BYTES) return target.reply(reqId, { ok: false, error: { type: 'ValueError', message: `naming an actor takes its handle, of 1 byte to ${MAX_HANDLE_BYTES / 1024} KiB` } });
        return this.forward(jobId, target, reqId, { ...call, handle: payload.toString('base64') });
      }
      default:
        return this.forward(jobId, target, reqId, call);
    }
  }

  private forward(jobId: string, target: ReplyTarget, reqId: number, call: HeadCall): void {
    const waiting = this.perJob.get(jobId) ?? 0;
    if (waiting >= MAX_PENDING) return target.reply(reqId, { ok: false, error: { type: 'RaySystemError', message: `this job already has ${MAX_PENDING} questions waiting for the head` } });
    const req = ++this.seq;
    const timer = setTimeout(
      guarded(this.d.log, 'in-job request timeout', () => {
        if (!this.settle(req)) return;
        if (!target.closed) target.reply(reqId, { ok: false, error: { type: 'RaySystemError', message: `the head did not answer ${call.op} in ${HEAD_ANSWER_MS / 1000}s` } });
      }),
      HEAD_ANSWER_MS,
    );
    timer.unref();
    this.pending.set(req, { jobId, target, reqId, timer });
    this.perJob.set(jobId, waiting + 1);
    this.d.toHead({ job_id: jobId, req, call });
  }

  /** Forget a pending question (answered or timed out); false if it was not pending. */
  private settle(req: number): Pending | null {
    const p = this.pending.get(req);
    if (!p) return null;
    this.pending.delete(req);
    clearTimeout(p.timer);
    const n = (this.perJob.get(p.jobId) ?? 1) - 1;
    if (n > 0) this.perJob.set(p.jobId, n);
    else this.perJob.delete(p.jobId);
    return p;
  }

  /** The head's answers, from a report's answer. */
  answered(replies: readonly InjobReply[]): void {
    for (const r of replies) {
      const p = this.settle(r.req);
      if (!p || p.target.closed) continue;
      const body: ReplyBody = { ok: r.ok, ...(r.value !== undefined ? { value: r.value } : {}), ...(r.error ? { error: r.error } : {}) };
      p.target.reply(p.reqId, body, r.data ? Buffer.from(r.data, 'base64') : undefined);
    }
  }

  /** A job ended here: its questions are not answered. */
  forgetJob(jobId: string): void {
    for (const [req, p] of this.pending) if (p.jobId === jobId) this.settle(req);
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.perJob.clear();
  }
}

/** Resources in the head's units (Usage) as a process reads them. */
export function describeUsage(u: Usage): Resources {
  const custom: Record<string, number> = {};
  for (const [k, v] of Object.entries(u.custom)) custom[k] = fromUnits(v);
  return { cpus: fromUnits(u.cpus), gpus: fromUnits(u.gpus.reduce((a, b) => a + b, 0)), memory: u.memory, custom };
}
