/**
 * An agent that comes back (a restarted agent, or the embedded agent of a restarted head)
 * presents its previous node id and supersedes that registration. The old one is GONE, never
 * listed LOST beside the live node of the same name — whether it was still alive when the agent
 * came back or had already been declared lost — and its tasks are fenced as lost all the same.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { call, inProcessHead, registration } from './helpers/head.js';

describe('node identity across restarts', () => {
  it('an agent coming back supersedes its earlier registration: GONE, not LOST, alive or already lost', async () => {
    const head = await inProcessHead({ heartbeatIntervalMs: 100, leaseMs: 400 });
    // Served on loopback so that its scheduler and lease checks run.
    await head.serve('127.0.0.1', 0);
    const listed = async () => ((await call(head, 'GET', '/api/nodes')).json.nodes as { node_id: string; node_name: string; state: string }[]).map((n) => [n.node_id, n.state]);
    const register = async (previous?: string) => {
      const res = await call(head, 'POST', '/api/agents/register', { ...registration('back'), ...(previous ? { previous_node_id: previous } : {}) });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      return String(res.json.node_id);
    };
    // The agent's reports keep the current registration's lease (until told to stop).
    let beating: string | null = null;
    const beat = setInterval(() => {
      if (beating) void call(head, 'POST', `/api/agents/${beating}/report`, { events: [], logs: [], running: [] });
    }, 50);
    onTestFinished(() => clearInterval(beat));
    const first = (beating = await register());
    await call(head, 'POST', '/api/jobs/', { submission_id: 'held', entrypoint: 'sleep 60', entrypoint_num_cpus: 1 });
    await expect.poll(async () => JSON.stringify((await call(head, 'GET', '/api/jobs/held')).json.raysub)).toContain('"ASSIGNED":1');

    // Back while its old registration is still alive (a head restarted within the lease): what
    // the old one held is fenced as lost.
    const second = (beating = await register(first));
    expect(await listed()).toEqual([[second, 'ALIVE']]);
    const held = (await call(head, 'GET', '/api/jobs/held')).json.raysub as { error_type: string; tasks: { attempts: unknown[] }[] };
    expect(held.error_type).toBe('NODE_LOST');
    // The attempt still names its node, though the node list no longer shows that registration.
    expect(held.tasks[0]?.attempts).toMatchObject([{ node_id: first, node_name: 'back', outcome: 'lost' }]);

    // Silent past its lease: truly lost, and listed so.
    beating = null;
    await expect.poll(listed, { timeout: 10_000 }).toEqual([[second, 'LOST']]);
    // Back after that (an agent restarted after a long outage): the lost registration is superseded too.
    const third = await register(second);
    expect(await listed()).toEqual([[third, 'ALIVE']]);
  });
});
