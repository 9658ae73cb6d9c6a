import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { call, callJson, createDispatcher, errorFrom } from '../shared/http.js';
import {
  pollResponseSchema,
  registerResponseSchema,
  reportResponseSchema,
  type PollRequest,
  type PollResponse,
  type RegisterRequest,
  type RegisterResponse,
  type ReportRequest,
  type ReportResponse,
} from '../shared/protocol/index.js';

/** The agent's HTTP calls to its head. */
export class HeadLink {
  private readonly dispatcher: Dispatcher;

  constructor(
    readonly address: string,
    private readonly token: string,
    tls: { ca?: string; pin?: string } = {},
  ) {
    this.dispatcher = createDispatcher(tls);
  }

  register(req: RegisterRequest, signal: AbortSignal): Promise<RegisterResponse> {
    return callJson(this.dispatcher, 'POST', `${this.address}/api/agents/register`, this.token, registerResponseSchema, { body: req, signal });
  }

  report(nodeId: string, req: ReportRequest, signal: AbortSignal): Promise<ReportResponse> {
    return callJson(this.dispatcher, 'POST', `${this.address}/api/agents/${nodeId}/report`, this.token, reportResponseSchema, { body: req, signal });
  }

  poll(nodeId: string, req: PollRequest, signal: AbortSignal): Promise<PollResponse> {
    return callJson(this.dispatcher, 'POST', `${this.address}/api/agents/${nodeId}/poll`, this.token, pollResponseSchema, {
      body: req,
      signal,
      timeoutMs: req.wait_ms + 30_000,
    });
  }

  /** Ask the head to place nothing new on this node. */
  async drain(nodeId: string): Promise<void> {
    const res = await call(this.dispatcher, 'POST', `${this.address}/api/agents/${nodeId}/drain`, this.token, { body: {}, timeoutMs: 5000 });
    if (res.statusCode !== 200) throw await errorFrom(res);
    await res.body.dump();
  }

  /** Tell the head this node is leaving, so its tasks are settled now rather than at lease expiry. */
  async leave(nodeId: string): Promise<void> {
    if (!nodeId) return;
    const res = await call(this.dispatcher, 'POST', `${this.address}/api/agents/${nodeId}/leave`, this.token, { body: {}, timeoutMs: 5000 });
    await res.body.dump();
  }

  async download(name: string, signal: AbortSignal): Promise<Readable> {
    const res = await call(this.dispatcher, 'GET', `${this.address}/api/packages/gcs/${encodeURIComponent(name)}/content`, this.token, { signal });
    if (res.statusCode !== 200) throw await errorFrom(res);
    return res.body;
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}
