/**
 * `raysub node cordon|drain|uncordon|forget` against a real head and two real agents: a cordoned
 * node takes no new work and stays cordoned across its agent's restart, drain waits for what runs,
 * forget is refused while the agent lives; a node's old registrations are shown once, and a lost
 * node never looks full.
 */
import { describe, expect, it } from 'vitest';
import { nodeInfoSchema } from '../src/shared/protocol/index.js';
import { runCli, spawnCli, startAgent, startHead, waitFor } from './helpers/cluster.js';

describe('node control', () => {
  it('cordon, drain, uncordon and forget; a node is shown once and a lost one never full', async () => {
    const head = await startHead({ localAgent: false });
    await startAgent(head, { name: 'na', numCpus: 1 });
    let nb = await startAgent(head, { name: 'nb', numCpus: 1 });
    const env = head.env;
    const nodes = async () => (await head.client.nodes()).map((n) => nodeInfoSchema.parse(n));
    const nodeOf = async (id: string) => (await head.client.getJob(id)).raysub.tasks?.[0]?.attempts.at(-1)?.node_name;

    const cordon = await runCli(['node', 'cordon', 'nb', '--json'], { env });
    expect(cordon.code, cordon.stderr).toBe(0);
    expect(JSON.parse(cordon.stdout)).toEqual({ node_name: 'nb', cordoned: true, running_tasks: 0 });
    expect((await runCli(['nodes'], { env })).stdout).toMatch(/nb\s+CORDONED/);

    // One CPU free on na only: the first job runs there, the second waits although nb is idle.
    for (const id of ['first', 'second']) expect((await runCli(['job', 'submit', '--no-wait', '--submission-id', id, '--', 'sleep', '120'], { env })).code).toBe(0);
    await waitFor(async () => (await head.client.getJob('first')).status === 'RUNNING', { what: 'first to run' });
    expect(await nodeOf('first')).toBe('na');
    // Once the scheduler has looked at it (it says why it waits), it is still waiting: nb takes nothing.
    const reason = await waitFor(async () => (await head.client.getJob('second')).raysub.queue?.reason, { what: 'second to have a wait reason' });
    expect((await head.client.getJob('second')).status).toBe('PENDING');
    expect(reason).not.toMatch(/nb/);

    const uncordon = await runCli(['node', 'uncordon', 'nb'], { env });
    expect(uncordon).toMatchObject({ code: 0 });
    expect(uncordon.stderr).toContain('Node nb takes work again');
    await waitFor(async () => (await head.client.getJob('second')).status === 'RUNNING', { what: 'second to run on nb' });
    expect(await nodeOf('second')).toBe('nb');

    // Drain: cordons, then waits for what runs; gives up after --timeout with 124, still cordoned.
    const timedOut = await runCli(['node', 'drain', 'nb', '--timeout', '1'], { env });
    expect(timedOut.code, timedOut.stderr).toBe(124);
    expect(timedOut.stderr).toMatch(/Draining nb: 1 task still running[\s\S]*still runs 1 task after --timeout; it stays cordoned/);
    const draining = spawnCli(['node', 'drain', 'nb'], { env });
    await waitFor(() => draining.output().includes('Draining nb: 1 task still running'), { what: 'drain to wait' });
    expect((await runCli(['job', 'stop', 'second'], { env })).code).toBe(0);
    const drained = await draining.result;
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stderr).toMatch(/Node nb is drained: it runs nothing/);

    // The agent restarts (a new registration of the same name): still cordoned, listed once.
    await nb.stop();
    nb = await startAgent(head, { name: 'nb', numCpus: 1 });
    const listed = (await nodes()).filter((n) => n.node_name === 'nb');
    expect(listed.map((n) => [n.state, n.cordoned])).toEqual([['ALIVE', true]]);
    expect((await runCli(['node', 'uncordon', 'nb'], { env })).code).toBe(0);

    // Forget: refused while the agent lives; then the lost node goes.
    const alive = await runCli(['node', 'forget', 'nb'], { env });
    expect(alive.code).toBe(65);
    expect(alive.stderr).toMatch(/node nb has a live agent: stop it first/);
    await nb.stop();
    await waitFor(async () => (await nodes()).find((n) => n.node_name === 'nb')?.state === 'LOST', { what: 'nb lost' });
    // A lost node holds nothing: its use is "-", not its whole size.
    expect((await runCli(['nodes'], { env })).stdout).toMatch(/nb\s+LOST\s+-\/1\s+-\/0\s+-\//);
    const lostStatus = await runCli(['status', '--json'], { env });
    const lostNode = (JSON.parse(lostStatus.stdout) as { nodes: { name: string; cpus: { used: number } }[] }).nodes.find((n) => n.name === 'nb');
    expect(lostNode?.cpus.used).toBe(0);
    const forgot = await runCli(['node', 'forget', 'nb', '--json'], { env });
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(JSON.parse(forgot.stdout)).toMatchObject({ node_name: 'nb', cordoned: false, forgotten: 2 });
    expect((await nodes()).map((n) => n.node_name)).toEqual(['na']);

    // Names the head does not know, names that are not names, and a user token: refused.
    const unknown = await runCli(['node', 'cordon', 'nope'], { env });
    expect(unknown.code).toBe(65);
    expect(unknown.stderr).toContain('no node named nope');
    expect((await runCli(['node', 'cordon', '../etc'], { env })).code).toBe(65);
    const user = await runCli(['token', 'create', '--kind', 'user', '--json'], { env });
    const userToken = (JSON.parse(user.stdout) as { token: string }).token;
    const refused = await runCli(['node', 'cordon', 'na'], { env: { ...env, RAYSUB_TOKEN: userToken } });
    expect(refused.code).toBe(77);
    expect((await runCli(['job', 'stop', 'first'], { env })).code).toBe(0);
  });
});
