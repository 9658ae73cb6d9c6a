import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/agent/outbox.js';
import { reportRequestSchema, reportResponseSchema, pollResponseSchema, type AgentEvent, type Assignment, type ReportRequest } from '../src/shared/protocol/index.js';
import { startHead, tempDir, waitFor, type TestHead } from './helpers/cluster.js';

/** A hand-driven agent: the protocol as the head sees it, with answers we can choose to "lose". */
async function post(head: TestHead, p: string, body: unknown): Promise<unknown> {
  const res = await request(head.url + p, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { authorization: `Bearer ${head.token}`, 'content-type': 'application/json' },
  });
  const json = await res.body.json();
  expect(res.statusCode, JSON.stringify(json)).toBe(200);
  return json;
}

const ref = (a: Assignment) => ({ task_id: a.task_id, attempt: a.attempt });

function ran(a: Assignment, seq: number): AgentEvent[] {
  const at = Date.now();
  return [
    { seq, type: 'started', ...ref(a), at },
    { seq: seq + 1, type: 'exited', ...ref(a), at, outcome: 'exited', exit_code: 0, signal: null, message: null, log_bytes: 0 },
  ];
}

describe('agent protocol', () => {
  it('answers the report that frees a CPU with the next assignment, redelivers it until the agent holds it, and applies events once', async () => {
    const head = await startHead({ localAgent: false });
    const reg = (await post(head, '/api/agents/register', {
      node_name: 'by-hand',
      hostname: 'test',
      pid: process.pid,
      version: 'test',
      totals: { num_cpus: 1, num_gpus: 0, memory: 2 ** 30, resources: {} },
      sandbox: { mode: 'none', detail: 'test', cgroups: false },
    })) as { node_id: string };
    const report = async (req: Omit<ReportRequest, 'logs'>) => reportResponseSchema.parse(await post(head, `/api/agents/${reg.node_id}/report`, { logs: [], ...req }));

    await head.client.submitJob({ entrypoint: 'true', submission_id: 'pair', entrypoint_num_cpus: 1, raysub: { parallel: 2 } });
    const poll = pollResponseSchema.parse(await post(head, `/api/agents/${reg.node_id}/poll`, { known: [], wait_ms: 10_000 }));
    expect(poll.assignments).toHaveLength(1);
    const first = poll.assignments[0]!;

    // Start and exit in one report: the answer acknowledges both and carries the task that now fits.
    const done = await report({ events: ran(first, 1), running: [ref(first)] });
    expect(done.acked_seq).toBe(2);
    expect(done.assignments?.map((a) => a.task_index)).toEqual([1 - first.task_index]);
    const second = done.assignments![0]!;

    // That answer was "lost": the same report resent (as a heartbeat would) is not applied twice,
    // and its answer carries the assignment again, since the agent does not list it as held.
    const resent = await report({ events: ran(first, 1), running: [] });
    expect(resent.acked_seq).toBe(2);
    expect(resent.assignments?.map(ref)).toEqual([ref(second)]);

    // Once the agent holds it, answers stop carrying it.
    const holding = await report({ events: [], running: [ref(second)] });
    expect(holding.assignments ?? []).toEqual([]);
    expect(holding.kills).toEqual([]);

    await report({ events: ran(second, 3), running: [ref(second)] });
    const job = await waitFor(async () => {
      const j = await head.client.getJob('pair');
      return j.status === 'SUCCEEDED' ? j : null;
    });
    expect(job.raysub?.tasks?.map((t) => t.attempts.length)).toEqual([1, 1]);
  });

  it("cuts an exit's message to what a report may carry, keeping its beginning and its end", () => {
    const outbox = new Outbox(tempDir(), 1024);
    const long = 'start ' + 'x'.repeat(100_000) + ' the end';
    outbox.exited({ task_id: 't', attempt: 1 }, { at: Date.now(), outcome: 'setup_failed', exit_code: null, signal: null, message: long });
    outbox.exited({ task_id: 'u', attempt: 1 }, { at: Date.now(), outcome: 'exited', exit_code: 0, signal: null, message: 'short' });
    // The head checks every report against the schema: a report it refuses would be resent until the node is lost.
    const report = reportRequestSchema.parse(outbox.build(1 << 20, []));
    const messages = report.events.map((e) => (e.type === 'exited' ? e.message : null));
    const cut = messages.find((m) => m?.startsWith('start ')) ?? '';
    expect(cut.length).toBeLessThanOrEqual(16_000);
    expect(cut.endsWith(' the end')).toBe(true);
    expect(cut).toMatch(/\[\.\.\. \d+ characters cut \.\.\.\]/);
    expect(messages).toContain('short');
  });
});
