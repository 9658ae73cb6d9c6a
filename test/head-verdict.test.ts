/**
 * What an ended attempt means: the verdict and retry table as pure functions, then the same
 * outcomes applied through the engine on a temporary SQLite file, with the time passed in, checking
 * what is recorded: the task re-queued after its back-off or ended, the job's final state.
 */
import { describe, expect, it } from 'vitest';
import type { AgentEvent, ExitOutcome } from '../src/shared/protocol/index.js';
import { retryOf, verdictOf, type AttemptOutcome, type VerdictJob } from '../src/head/verdict.js';
import { addJob, addNode, engineOnTempDb, type EngineRig } from './helpers/head.js';
import { killsFor } from '../src/head/placement.js';

const T0 = 1_800_000_000_000;
const job = (o: Partial<VerdictJob> = {}): VerdictJob => ({ stopRequested: false, failedTask: null, timeoutS: 30, maxRetries: 2, retryBackoffS: 1, ...o });

type End = [outcome: AttemptOutcome, exitCode: number | null, signal: string | null, message: string | null];

describe('verdicts', () => {
  const rows: [name: string, j: VerdictJob, end: End, state: string, errorType: string | null, retryable: boolean, message: string | RegExp | null][] = [
    ['exit 0 succeeds', job(), ['exited', 0, null, null], 'SUCCEEDED', null, false, null],
    ['exit 0 succeeds even while stopping', job({ stopRequested: true }), ['exited', 0, null, null], 'SUCCEEDED', null, false, null],
    ['a non-zero exit fails, retryable', job(), ['exited', 3, null, null], 'FAILED', 'ENTRYPOINT_FAILED', true, 'exited with code 3'],
    ['a signal nobody sent fails, retryable', job(), ['signaled', null, 'SIGSEGV', null], 'FAILED', 'ENTRYPOINT_FAILED', true, 'killed by SIGSEGV'],
    ['an OOM kill, retryable', job(), ['oom', null, 'SIGKILL', null], 'FAILED', 'OOM_KILLED', true, /more memory/],
    ['an eviction for disk pressure, retryable', job(), ['evicted', null, 'SIGKILL', 'evicted: the node\'s disk had 1 MiB free'], 'FAILED', 'DISK_PRESSURE', true, /evicted: the node's disk/],
    ['a lost node, retryable', job(), ['lost', null, null, 'node a stopped sending heartbeats'], 'FAILED', 'NODE_LOST', true, 'node a stopped sending heartbeats'],
    ['a node fault (its work dir takes no writes), retryable', job(), ['node_fault', null, null, "node n1 could not prepare the task (could not copy the working dir): EROFS: read-only file system, mkdir '/w/tasks/j'"], 'FAILED', 'NODE_UNHEALTHY', true, /^node n1 could not prepare the task .*EROFS: read-only file system, mkdir '\/w\/tasks\/j'$/],
    ['a node fault while stopping is STOPPED', job({ stopRequested: true }), ['node_fault', null, null, 'EIO'], 'STOPPED', 'STOPPED_BY_USER', false, 'stopped by the user'],
    ['a timeout is not retried', job(), ['timeout', null, null, null], 'FAILED', 'TIMEOUT', false, 'timed out after 30s'],
    ['a runtime env setup failure is not retried', job(), ['setup_failed', null, null, 'pip said no'], 'FAILED', 'RUNTIME_ENV_SETUP_FAILED', false, 'pip said no'],
    ['a missing sandbox is not retried', job(), ['sandbox_unavailable', null, null, null], 'FAILED', 'SANDBOX_UNAVAILABLE', false, /sandbox/],
    ['a process that could not start is not retried', job(), ['spawn_failed', null, null, null], 'FAILED', 'ENTRYPOINT_FAILED', false, /could not be started/],
    ['killed by its agent, not retried', job(), ['killed', null, 'SIGKILL', null], 'FAILED', 'ENTRYPOINT_FAILED', false, /killed by its agent/],
    ['anything but success while stopping is STOPPED', job({ stopRequested: true }), ['killed', null, 'SIGTERM', null], 'STOPPED', 'STOPPED_BY_USER', false, 'stopped by the user'],
    ['a sibling of the failed task is cancelled', job({ failedTask: 1 }), ['killed', null, 'SIGTERM', null], 'STOPPED', null, false, 'cancelled because task 1 failed'],
    ['the failed task itself keeps its verdict', job({ failedTask: 0 }), ['exited', 2, null, null], 'FAILED', 'ENTRYPOINT_FAILED', true, 'exited with code 2'],
  ];
  it.each(rows)('%s', (_name, j, [outcome, exitCode, signal, message], state, errorType, retryable, expected) => {
    const v = verdictOf(j, { taskIdx: 0, outcome, exitCode, signal, message });
    expect({ state: v.state, errorType: v.errorType, retryable: v.retryable }).toEqual({ state, errorType, retryable });
    if (expected === null) expect(v.message).toBeNull();
    else expect(v.message).toMatch(expected);
  });

  it('retries with doubling back-off, capped, until the retries are used', () => {
    const failed = verdictOf(job(), { taskIdx: 0, outcome: 'exited', exitCode: 1, signal: null, message: null });
    const table: [attempt: number, maxRetries: number, backoffS: number, delayMs: number | null][] = [
      [1, 2, 1, 1000],
      [2, 2, 1, 2000],
      [3, 2, 1, null],
      [1, 0, 1, null],
      [1, 5, 0, 0],
      [4, 10, 10, 80_000],
      [9, 10, 10, 300_000],
    ];
    for (const [attempt, maxRetries, retryBackoffS, delayMs] of table) {
      const r = retryOf(job({ maxRetries, retryBackoffS }), attempt, failed, T0);
      expect({ attempt, maxRetries, retryBackoffS, r }).toEqual({ attempt, maxRetries, retryBackoffS, r: delayMs === null ? null : { delayMs, notBefore: T0 + delayMs } });
    }
    const timedOut = verdictOf(job(), { taskIdx: 0, outcome: 'timeout', exitCode: null, signal: null, message: null });
    expect(retryOf(job({ maxRetries: 5 }), 1, timedOut, T0)).toBeNull();
  });
});

let seq = 0;
function exited(taskId: string, attempt: number, at: number, outcome: ExitOutcome, exitCode: number | null): Extract<AgentEvent, { type: 'exited' }> {
  return { seq: ++seq, type: 'exited', task_id: taskId, attempt, at, outcome, exit_code: exitCode, signal: null, message: null, log_bytes: 0 };
}
function started(taskId: string, attempt: number, at: number): AgentEvent {
  return { seq: ++seq, type: 'started', task_id: taskId, attempt, at };
}

/** One node, one job; place it at T0 and start its tasks. */
function running(spec: Parameters<typeof addJob>[2]): { rig: EngineRig; node: string } {
  seq = 0;
  const rig = engineOnTempDb();
  const node = addNode(rig, 'n1', { cpus: 8 }, T0);
  addJob(rig, 'j', spec, T0);
  rig.engine.schedule(undefined, T0);
  const tasks = rig.engine.view.tasksOfJob('j');
  rig.engine.applyReport(node, tasks.map((t) => started(t.id, t.attempt, T0 + 10)), null, T0 + 10);
  return { rig, node };
}

describe('verdicts applied by the engine', () => {
  it('re-queues a failed attempt after its back-off, and places it again only then', () => {
    const { rig, node } = running({ maxRetries: 1, retryBackoffS: 2 });
    rig.engine.applyReport(node, [exited('j:0', 1, T0 + 1000, 'exited', 3)], null, T0 + 1000);
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'PENDING', attempt: 1, not_before: T0 + 3000, error_type: 'ENTRYPOINT_FAILED' });
    expect(rig.logs.read('j', 0, 0).map((seg) => seg.data.toString()).join('')).toContain('attempt 1 failed (ENTRYPOINT_FAILED: exited with code 3); retrying in 2.0s (1/1 retries used)');
    rig.engine.schedule(undefined, T0 + 2999);
    expect(rig.store.tasks.get('j', 0)?.state).toBe('PENDING');
    expect(rig.engine.view.tasksOfJob('j')[0]?.reason).toBe('retrying after back-off (attempt 2 in 1s)');
    rig.engine.schedule(undefined, T0 + 3000);
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'ASSIGNED', attempt: 2 });
    rig.engine.applyReport(node, [started('j:0', 2, T0 + 3100), exited('j:0', 2, T0 + 3200, 'exited', 4)], null, T0 + 3200);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'FAILED', error_type: 'ENTRYPOINT_FAILED', exit_code: 4, end_time: T0 + 3200 });
    expect(rig.store.tasks.attemptsOfJob('j').map((a) => [a.attempt, a.outcome, a.exit_code])).toEqual([
      [1, 'exited', 3],
      [2, 'exited', 4],
    ]);
    expect(rig.engine.view.node(node)?.free).toMatchObject({ cpus: 80_000, tasks: 1_000_000 });
  });

  it('fails an array job on its first task that fails for good: what has not started is cancelled, what runs is killed', () => {
    const rig = engineOnTempDb();
    seq = 0;
    const node = addNode(rig, 'n1', { cpus: 2 }, T0);
    addJob(rig, 'j', { cpus: 1, parallel: 4 }, T0);
    rig.engine.schedule(undefined, T0);
    rig.engine.applyReport(node, [started('j:0', 1, T0 + 1), started('j:1', 1, T0 + 1), exited('j:1', 1, T0 + 5, 'exited', 2)], null, T0 + 5);
    expect(rig.store.tasks.ofJob('j').map((t) => t.state)).toEqual(['RUNNING', 'FAILED', 'STOPPED', 'STOPPED']);
    expect(killsFor(rig.engine.view, node, [{ task_id: 'j:0', attempt: 1 }])).toEqual([{ task_id: 'j:0', attempt: 1 }]);
    rig.engine.applyReport(node, [exited('j:0', 1, T0 + 6, 'killed', null)], null, T0 + 6);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'FAILED', exit_code: 2, message: 'task 1 of 4 failed: exited with code 2' });
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'STOPPED', message: 'cancelled because task 1 failed' });
  });

  it('applies each event once, in sequence, and ignores a stale attempt', () => {
    const { rig, node } = running({ maxRetries: 0 });
    const ev = exited('j:0', 1, T0 + 100, 'exited', 0);
    expect(rig.engine.applyReport(node, [{ ...ev, seq: ev.seq + 5 }], null, T0 + 100)).toBe(1);
    expect(rig.store.jobs.get('j')?.status).toBe('RUNNING');
    expect(rig.engine.applyReport(node, [ev, ev], null, T0 + 100)).toBe(2);
    expect(rig.engine.applyReport(node, [exited('j:0', 7, T0 + 200, 'exited', 1)], null, T0 + 200)).toBe(3);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'SUCCEEDED', exit_code: 0 });
  });

  it('retries a lost node\'s task elsewhere, and without retries fails it as NODE_LOST', () => {
    const { rig, node } = running({ maxRetries: 1, cpus: 1 });
    const other = addNode(rig, 'n2', { cpus: 1 }, T0 + 20);
    rig.engine.nodeLost(node, 'node n1 stopped sending heartbeats', T0 + 1000);
    rig.engine.schedule(undefined, T0 + 2000);
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'ASSIGNED', attempt: 2, node_id: other });
    rig.engine.nodeLost(other, 'node n2 shut down', T0 + 3000);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'FAILED', error_type: 'NODE_LOST', message: 'job failed: node n2 shut down' });
  });

  it('retries an attempt its node could not prepare (a node fault) on another node, and fails it as NODE_UNHEALTHY when no retry is left', () => {
    seq = 0;
    const rig = engineOnTempDb();
    const n1 = addNode(rig, 'n1', { cpus: 4 }, T0);
    const n2 = addNode(rig, 'n2', { cpus: 1 }, T0);
    addJob(rig, 'j', { cpus: 1, maxRetries: 1, retryBackoffS: 0 }, T0);
    rig.engine.schedule(undefined, T0);
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'ASSIGNED', node_id: n1 });
    const why = (node: string): string => `node ${node} could not prepare the task (could not copy the working dir): EROFS: read-only file system, mkdir '/w/tasks/j'`;
    // As the agent hub applies a report: the node's condition first, then its events.
    rig.engine.setUnhealthy(n1, { reason: `work dir not writable: EROFS: read-only file system, open '/w/tasks/.probe'`, since: T0 + 100 });
    rig.engine.applyReport(n1, [{ ...exited('j:0', 1, T0 + 100, 'setup_failed', null), message: why('n1'), fault: 'node' }], null, T0 + 100);
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'PENDING', error_type: 'NODE_UNHEALTHY' });
    rig.engine.schedule(undefined, T0 + 200);
    // n1 has more free CPUs, but it is unhealthy: the retry goes to n2.
    expect(rig.store.tasks.get('j', 0)).toMatchObject({ state: 'ASSIGNED', attempt: 2, node_id: n2 });
    seq = 0; // each agent numbers its own events
    rig.engine.applyReport(n2, [{ ...exited('j:0', 2, T0 + 300, 'setup_failed', null), message: why('n2'), fault: 'node' }], null, T0 + 300);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'FAILED', error_type: 'NODE_UNHEALTHY', message: `job failed: ${why('n2')}` });
    expect(rig.store.tasks.attemptsOfJob('j').map((a) => [a.attempt, a.outcome, a.error_type])).toEqual([
      [1, 'node_fault', 'NODE_UNHEALTHY'],
      [2, 'node_fault', 'NODE_UNHEALTHY'],
    ]);
  });

  it('keeps a setup failure without a node fault (any agent that predates them) the job\'s own: RUNTIME_ENV_SETUP_FAILED, not retried', () => {
    const { rig, node } = running({ maxRetries: 3 });
    rig.engine.applyReport(node, [{ ...exited('j:0', 1, T0 + 100, 'setup_failed', null), message: 'pip said no' }], null, T0 + 100);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'FAILED', error_type: 'RUNTIME_ENV_SETUP_FAILED' });
  });

  it('stops a job in any state', () => {
    const { rig, node } = running({ cpus: 8, parallel: 2 });
    expect(rig.store.tasks.ofJob('j').map((t) => t.state)).toEqual(['RUNNING', 'PENDING']);
    expect(rig.engine.stopJob('j')).toBe(true);
    expect(rig.store.tasks.get('j', 1)).toMatchObject({ state: 'STOPPED', error_type: 'STOPPED_BY_USER' });
    expect(rig.store.jobs.get('j')?.status).toBe('RUNNING');
    rig.engine.applyReport(node, [exited('j:0', 1, T0 + 50, 'killed', null)], null, T0 + 50);
    expect(rig.store.jobs.get('j')).toMatchObject({ status: 'STOPPED', error_type: 'STOPPED_BY_USER' });
    expect(rig.engine.stopJob('j')).toBe(false);
  });
});
