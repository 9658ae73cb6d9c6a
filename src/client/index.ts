/**
 * The raysub SDK: a typed client for a head's HTTP API. The CLI is built on it.
 */
import fs from 'node:fs';
import { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { RaysubError, toRaysubError } from '../shared/errors.js';
import { call, callJson, createDispatcher, errorFrom, networkCode } from '../shared/http.js';
import { followLogStream, type FollowLogsOptions, type FollowedLine } from './logFollow.js';
import {
  isTerminal,
  jobDetailsSchema,
  jobListSchema,
  jobSubmitResponseSchema,
  nodeListSchema,
  nodeControlResponseSchema,
  type NodeControlResponse,
  scheduleInfoSchema,
  scheduleListSchema,
  scheduleRunListSchema,
  scheduleRunSchema,
  versionResponseSchema,
  usageSummarySchema,
  type UsageSummary,
  tokenCreateResponseSchema,
  tokenInfoSchema,
  tokenListSchema,
  loginCodeResponseSchema,
  jobCountsResponseSchema,
  type TokenCreateRequest,
  type JobDetails,
  type JobStatus,
  type JobSubmitRequest,
  type NodeInfo,
  type ScheduleCreateRequest,
  type ScheduleInfo,
  type ScheduleRun,
} from '../shared/protocol/index.js';

export { packDirectory, archiveAsPackage, listPackageFiles, DEFAULT_EXCLUDES, type PackedDir } from './packer.js';
export { uploadPyModules, type PyModuleUpload } from './pyModules.js';
export type { FollowLogsOptions, FollowedLine, FollowRetry, FollowState } from './logFollow.js';

export interface ClientOptions {
  address: string;
  token?: string;
  /** Extra headers for every request (Ray's `--headers`). */
  headers?: Record<string, string>;
  /** How many times to retry a safe request when the head cannot be reached. */
  retries?: number;
  /** PEM of the CA(s) that sign an https head's certificate, besides the system's (--ca). */
  ca?: string;
  /** An https head's own certificate, accepted whatever names it carries (a head on this machine). */
  pin?: string;
  /** Told about each retry, so a CLI can say what it is doing. */
  onRetry?: (info: { attempt: number; delayMs: number; error: RaysubError }) => void;
  /**
   * Give up on a head that has not answered once since this client (or the one it was derived
   * from) was made, after this long: a wrong address or a head that is not running is said at
   * once, while a head that answered before and went away is waited for with `retries`.
   */
  firstContactMs?: number;
}

/** DNS cannot resolve the name: retrying will not change it. */
const UNRESOLVABLE = new Set(['ENOTFOUND', 'EAI_AGAIN']);
/** Failures that say no connection to the head was ever made. */
const NEVER_CONNECTED = new Set([...UNRESOLVABLE, 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export interface ListJobsOptions {
  limit?: number;
  cursor?: string;
  status?: JobStatus[];
  schedule?: string;
  /** `key` or `key=value` metadata labels; a job must carry every one. */
  labels?: string[];
  /** Only jobs with this name (`--name` at submission). */
  name?: string;
  /** Only jobs submitted at or after this time (epoch ms). */
  since?: number;
}

const uploadResponseSchema = z.object({ uploaded: z.boolean(), size: z.number() });

export class RaysubClient {
  readonly address: string;
  private readonly dispatcher: Dispatcher;

  /** Whether the head has answered this client, or the one it was derived from. */
  private readonly contact: { reached: boolean };

  constructor(
    private readonly opts: ClientOptions,
    shared?: { contact: { reached: boolean }; dispatcher: Dispatcher },
  ) {
    this.address = opts.address.replace(/\/+$/, '');
    this.dispatcher = shared?.dispatcher ?? createDispatcher({ ca: opts.ca, pin: opts.pin });
    this.contact = shared?.contact ?? { reached: false };
  }

  /** A client for the same head and credentials with other retry settings. */
  derive(opts: Pick<ClientOptions, 'retries' | 'onRetry'>): RaysubClient {
    return new RaysubClient({ ...this.opts, ...opts }, { contact: this.contact, dispatcher: this.dispatcher });
  }

  /** A head that never answered: say so now, with the address tried, rather than retry for long. */
  private neverReached(e: RaysubError, startedAt: number, delayMs: number): RaysubError | null {
    if (e.code !== 'HEAD_UNREACHABLE' || this.contact.reached || this.opts.firstContactMs === undefined) return null;
    const code = networkCode(e);
    // A connection that was made and then broke (a head killed under a long poll): it was there.
    if (!code || !NEVER_CONNECTED.has(code)) {
      this.contact.reached = true;
      return null;
    }
    if (code && UNRESOLVABLE.has(code)) {
      return new RaysubError('HEAD_UNREACHABLE', `cannot resolve the head's host ${new URL(this.address).hostname} (${code}); tried ${this.address} (from --address, RAYSUB_ADDRESS, the config file or the local head)`, { cause: e });
    }
    if (Date.now() - startedAt + delayMs <= this.opts.firstContactMs) return null;
    return new RaysubError('HEAD_UNREACHABLE', `no head answers at ${this.address} (${code ?? e.message}); is it running? (the address comes from --address, RAYSUB_ADDRESS, the config file or the local head)`, { cause: e });
  }

  private url(path: string): string {
    return `${this.address}${path}`;
  }

  /** Retry `fn` with back-off while the head is unreachable (only for idempotent calls). */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    const retries = this.opts.retries ?? 5;
    const startedAt = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await fn();
        this.contact.reached = true;
        return result;
      } catch (err) {
        const e = toRaysubError(err);
        if (!e.retryable) throw e;
        const delayMs = Math.min(8000, 250 * 2 ** (attempt - 1));
        const never = this.neverReached(e, startedAt, delayMs);
        if (never) throw never;
        // A head never reached is retried for as long as firstContactMs allows, whatever the count.
        const timeBound = e.code === 'HEAD_UNREACHABLE' && !this.contact.reached && this.opts.firstContactMs !== undefined;
        if (attempt > retries && !timeBound) throw e;
        this.opts.onRetry?.({ attempt, delayMs, error: e });
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  private json<T extends z.ZodType>(method: Dispatcher.HttpMethod, path: string, schema: T, body?: unknown, timeoutMs?: number): Promise<z.infer<T>> {
    return callJson(this.dispatcher, method, this.url(path), this.opts.token, schema, { body, headers: this.opts.headers, timeoutMs });
  }

  /** The head's version handshake (also checks the token). */
  version() {
    return this.retrying(() => this.json('GET', '/api/version', versionResponseSchema));
  }

  /** Submit a job. Safe to retry: the submission id makes it idempotent. */
  submitJob(req: JobSubmitRequest & { submission_id: string }) {
    return this.retrying(() => this.json('POST', '/api/jobs/', jobSubmitResponseSchema, req));
  }

  /** A job's details; with `waitS`, the head answers when the job is terminal or the time is up. */
  getJob(id: string, waitS?: number): Promise<JobDetails> {
    const q = waitS ? `?wait_s=${waitS}` : '';
    return this.retrying(() => this.json('GET', `/api/jobs/${encodeURIComponent(id)}${q}`, jobDetailsSchema, undefined, (waitS ?? 0) * 1000 + 30_000));
  }

  /** Jobs, newest first, one page at a time. */
  async listJobs(opts: ListJobsOptions = {}): Promise<{ jobs: JobDetails[]; nextCursor: string | null }> {
    const q = new URLSearchParams();
    if (opts.limit) q.set('limit', String(opts.limit));
    if (opts.cursor) q.set('cursor', opts.cursor);
    if (opts.status?.length) q.set('status', opts.status.join(','));
    if (opts.schedule) q.set('schedule', opts.schedule);
    for (const l of opts.labels ?? []) q.append('label', l);
    if (opts.name !== undefined) q.set('name', opts.name);
    if (opts.since !== undefined) q.set('since', String(opts.since));
    return this.retrying(async () => {
      const res = await call(this.dispatcher, 'GET', this.url(`/api/jobs/?${q.toString()}`), this.opts.token, { headers: this.opts.headers });
      if (res.statusCode !== 200) throw await errorFrom(res);
      const jobs = jobListSchema.parse(await res.body.json());
      const cursor = res.headers['x-next-cursor'];
      return { jobs, nextCursor: typeof cursor === 'string' ? cursor : null };
    });
  }

  /** Ask the head to stop a job; returns false if it had already finished. */
  async stopJob(id: string): Promise<boolean> {
    const r = await this.retrying(() => this.json('POST', `/api/jobs/${encodeURIComponent(id)}/stop`, z.object({ stopped: z.boolean() })));
    return r.stopped;
  }

  /** Hold a pending job (it is not started until released) or release it. */
  async holdJob(id: string, held: boolean): Promise<void> {
    await this.retrying(() => this.json('POST', `/api/jobs/${encodeURIComponent(id)}/${held ? 'hold' : 'release'}`, z.object({ held: z.boolean() })));
  }

  /** What the jobs submitted in [since, until) used, grouped by the value of the label `by`. */
  async usage(opts: { since?: number; until?: number; by?: string } = {}): Promise<UsageSummary> {
    const q = new URLSearchParams();
    if (opts.since !== undefined) q.set('since', String(opts.since));
    if (opts.until !== undefined) q.set('until', String(opts.until));
    if (opts.by !== undefined) q.set('by', opts.by);
    return this.retrying(() => this.json('GET', `/api/usage?${q.toString()}`, usageSummarySchema));
  }

  /** Delete a finished job and its logs. */
  async deleteJob(id: string): Promise<void> {
    await this.json('DELETE', `/api/jobs/${encodeURIComponent(id)}`, z.object({ deleted: z.boolean() }));
  }

  /** The whole log so far, as one string (raysub's own lines, marked `[raysub]`, included). */
  async getLogs(id: string): Promise<string> {
    const r = await this.retrying(() => this.json('GET', `/api/jobs/${encodeURIComponent(id)}/logs?view=raysub`, z.object({ logs: z.string() })));
    return r.logs;
  }

  /**
   * A job's log from the start, piece by piece; with `follow`, until the job ends (the last item
   * is `{end: true, status}`). Survives dropped connections and head restarts, resuming exactly
   * where it stopped; throws HEAD_UNREACHABLE only once the head has not answered for
   * `unreachableTimeoutMs`.
   */
  followLogs(id: string, opts: FollowLogsOptions): AsyncGenerator<FollowedLine> {
    return followLogStream((from, signal) => this.openLogStream(id, opts, from, signal), opts);
  }

  private async openLogStream(id: string, opts: FollowLogsOptions, from: Record<string, number>, signal: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const path = `/api/jobs/${encodeURIComponent(id)}/logs/stream`;
    const { follow, task, tail, since } = opts;
    const timestamps = Boolean(opts.timestamps);
    const extra = task !== undefined || tail !== undefined || since !== undefined || timestamps;
    // Offsets go in a POST body: an array job's would not fit in a URL.
    const res = Object.keys(from).length || extra
      ? await call(this.dispatcher, 'POST', this.url(path), this.opts.token, { body: { follow, from, task, tail, since, timestamps }, headers: this.opts.headers, signal })
      : await call(this.dispatcher, 'GET', this.url(`${path}?follow=${follow}`), this.opts.token, { headers: this.opts.headers, signal });
    if (res.statusCode !== 200) throw await errorFrom(res);
    return res.body as AsyncIterable<Buffer>;
  }

  /** Wait until the job is terminal (or `timeoutMs` passes) and return its details. */
  async waitForJob(id: string, opts: { timeoutMs?: number } = {}): Promise<JobDetails> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const waitS = Math.max(0, Math.min(60, Math.ceil(left / 1000)));
      const job = await this.getJob(id, Number.isFinite(left) ? waitS : 60);
      if (isTerminal(job.status)) return job;
      if (Date.now() >= deadline) throw new RaysubError('WAIT_TIMEOUT', `job ${id} is still ${job.status} after the wait timeout`);
    }
  }

  async hasPackage(name: string): Promise<boolean> {
    return this.retrying(async () => {
      const res = await call(this.dispatcher, 'GET', this.url(`/api/packages/gcs/${encodeURIComponent(name)}`), this.opts.token, { headers: this.opts.headers });
      await res.body.dump();
      if (res.statusCode === 200) return true;
      if (res.statusCode === 404) return false;
      throw new RaysubError(res.statusCode === 401 ? 'UNAUTHORIZED' : 'INTERNAL', `checking package ${name}: HTTP ${res.statusCode}`);
    });
  }

  /** Upload an archive file, reporting bytes sent. */
  async uploadPackage(name: string, file: string, onProgress?: (sent: number, total: number) => void): Promise<void> {
    const total = fs.statSync(file).size;
    await this.retrying(async () => {
      let sent = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          sent += chunk.length;
          onProgress?.(sent, total);
          cb(null, chunk);
        },
      });
      const body = fs.createReadStream(file).pipe(counter);
      const res = await call(this.dispatcher, 'PUT', this.url(`/api/packages/gcs/${encodeURIComponent(name)}`), this.opts.token, {
        rawBody: body,
        contentLength: total,
        headers: { ...this.opts.headers, 'content-type': 'application/octet-stream' },
        timeoutMs: 600_000,
      });
      if (res.statusCode !== 200) throw await errorFrom(res);
      uploadResponseSchema.parse(await res.body.json());
    });
  }

  async nodes(): Promise<NodeInfo[]> {
    const r = await this.retrying(() => this.json('GET', '/api/nodes', nodeListSchema));
    return r.nodes;
  }

  /** Cordon a node (no new work; what runs finishes), or lift the cordon (the admin token). Safe to retry. */
  setNodeCordon(name: string, on: boolean): Promise<NodeControlResponse> {
    return this.retrying(() => this.json('POST', `/api/nodes/${encodeURIComponent(name)}/${on ? 'cordon' : 'uncordon'}`, nodeControlResponseSchema));
  }

  /** Forget a node whose agent is gone (the admin token). */
  forgetNode(name: string): Promise<NodeControlResponse> {
    return this.json('DELETE', `/api/nodes/${encodeURIComponent(name)}`, nodeControlResponseSchema);
  }

  /** Create a schedule; with `update`, create or replace it. Safe to retry: the same definition returns the same schedule. */
  createSchedule(req: ScheduleCreateRequest, opts: { update?: boolean } = {}): Promise<ScheduleInfo> {
    const path = opts.update ? `/api/schedules/${encodeURIComponent(req.name)}` : '/api/schedules';
    return this.retrying(() => this.json(opts.update ? 'PUT' : 'POST', path, scheduleInfoSchema, req));
  }

  /** Every schedule with its next due time, last run and active jobs. */
  async listSchedules(): Promise<ScheduleInfo[]> {
    return (await this.retrying(() => this.json('GET', '/api/schedules', scheduleListSchema))).schedules;
  }

  /** One schedule. */
  getSchedule(name: string): Promise<ScheduleInfo> {
    return this.retrying(() => this.json('GET', `/api/schedules/${encodeURIComponent(name)}`, scheduleInfoSchema));
  }

  /** A schedule's run history, newest first. */
  async scheduleRuns(name: string, limit = 50): Promise<ScheduleRun[]> {
    const r = await this.retrying(() => this.json('GET', `/api/schedules/${encodeURIComponent(name)}/runs?limit=${limit}`, scheduleRunListSchema));
    return r.runs;
  }

  /** Pause or resume a schedule (idempotent). */
  setSchedulePaused(name: string, paused: boolean): Promise<ScheduleInfo> {
    return this.retrying(() => this.json('POST', `/api/schedules/${encodeURIComponent(name)}/${paused ? 'pause' : 'resume'}`, scheduleInfoSchema));
  }

  /** Run a schedule's job now; `submissionId` makes a retried trigger return the same run. */
  triggerSchedule(name: string, submissionId?: string): Promise<ScheduleRun> {
    const body = submissionId ? { submission_id: submissionId } : {};
    return this.retrying(() => this.json('POST', `/api/schedules/${encodeURIComponent(name)}/trigger`, scheduleRunSchema, body));
  }

  /** Delete a schedule and its run history (the jobs it fired stay). */
  async deleteSchedule(name: string): Promise<void> {
    await this.json('DELETE', `/api/schedules/${encodeURIComponent(name)}`, z.object({ deleted: z.boolean() }));
  }

  /** Create a user or agent token (admin token only); the answer is the only place the token appears. */
  createToken(req: TokenCreateRequest) {
    return this.json('POST', '/api/tokens', tokenCreateResponseSchema, req);
  }

  /** Every token the head knows, revoked ones too (never the tokens themselves). */
  async listTokens() {
    return (await this.retrying(() => this.json('GET', '/api/tokens', tokenListSchema))).tokens;
  }

  /** Revoke a token by id or name: requests carrying it are refused from now on. */
  revokeToken(idOrName: string) {
    return this.retrying(() => this.json('DELETE', `/api/tokens/${encodeURIComponent(idOrName)}`, tokenInfoSchema));
  }

  /** A one-time dashboard login code for this client's token (open `<address><path>` in a browser). */
  createLoginCode() {
    // Not retried: each call makes a new code, and an unanswered one simply expires.
    return this.json('POST', '/api/session/login-codes', loginCodeResponseSchema, {});
  }

  /** Jobs by status, read without scanning every job (with a label filter: `key` or `key=value`). */
  jobCounts(label?: string) {
    return this.retrying(() => this.json('GET', `/api/cluster/summary${label ? `?label=${encodeURIComponent(label)}` : ''}`, jobCountsResponseSchema));
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
