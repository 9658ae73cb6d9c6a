/**
 * What the operator controls about when a job may start — held jobs, dependencies, array
 * throttles — decided in process: each row builds an engine on a temporary SQLite file, records
 * jobs as the API does and runs one placement pass. The end-to-end side is in ops-jobs.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { RaysubError } from '../src/shared/errors.js';
import type { AgentEvent } from '../src/shared/protocol/index.js';
import { planPlacements } from '../src/head/placement.js';
import { parseArraySpec } from '../src/shared/arraySpec.js';
import { addJob, addNode, engineOnTempDb, restartEngine, type EngineRig, type JobSpec, type NodeSpec } from './helpers/head.js';

const T0 = 1_800_000_000_000;
const POLICY = { starvationMs: 60_000, unschedulableGraceMs: 60_000 };

interface Row {
  name: string;
  nodes: Record<string, NodeSpec>;
  jobs: [id: string, spec: JobSpec][];
  /** Per job, how many of its tasks the pass places. */
  placed: Record<string, number>;
  /** Per job, why its first waiting task waits. */
  waits?: Record<string, RegExp>;
}

const rows: Row[] = [
  {
    name: 'a held job waits, saying how to release it; the jobs behind it run',
    nodes: { n1: { cpus: 4 } },
    jobs: [
      ['held', { cpus: 1, parallel: 2, held: true }],
      ['free', { cpus: 1 }],
    ],
    placed: { free: 1 },
    waits: { held: /^held \(raysub job release held lets it run\)$/ },
  },
  {
    name: 'a held job of higher priority does not block the queue',
    nodes: { n1: { cpus: 1 } },
    jobs: [
      ['urgent', { cpus: 1, priority: 10, held: true }],
      ['normal', { cpus: 1 }],
    ],
    placed: { normal: 1 },
    waits: { urgent: /^held/ },
  },
  {
    name: 'a job waits for the jobs it runs after while they are queued, naming them and what it needs of them',
    nodes: { n1: { cpus: 4 } },
    jobs: [
      ['prep', { cpus: 8, waitForCapacity: true }],
      ['train', { cpus: 1, after: ['prep'] }],
      ['report', { cpus: 1, afterAny: ['prep'], after: ['train'] }],
      ['other', { cpus: 1 }],
    ],
    placed: { other: 1 },
    waits: { train: /^waiting for prep to succeed \(PENDING\)$/, report: /^waiting for train to succeed \(PENDING\), prep to end \(PENDING\)$/ },
  },
  {
    name: 'max_concurrent: at most K tasks of the job placed at once, saying "throttled (K running)"; other jobs use the room',
    nodes: { n1: { cpus: 8 } },
    jobs: [
      ['sweep', { cpus: 1, parallel: 6, maxConcurrent: 2 }],
      ['other', { cpus: 1, parallel: 3 }],
    ],
    placed: { sweep: 2, other: 3 },
    waits: { sweep: /^throttled \(2 running\)$/ },
  },
];

let seq = 0;
const started = (taskId: string, at: number): AgentEvent => ({ seq: ++seq, type: 'started', task_id: taskId, attempt: 1, at });
const exited = (taskId: string, at: number, code: number): AgentEvent => ({ seq: ++seq, type: 'exited', task_id: taskId, attempt: 1, at, outcome: 'exited', exit_code: code, signal: null, message: null, log_bytes: 0 });

/** Place, start and end a single-task job with this exit code. */
function run(rig: EngineRig, node: string, id: string, code: number, at: number): void {
  rig.engine.schedule(undefined, at);
  expect(rig.store.tasks.get(id, 0)?.state).toBe('ASSIGNED');
  rig.engine.applyReport(node, [started(`${id}:0`, at), exited(`${id}:0`, at + 1, code)], null, at + 1);
  expect(rig.store.jobs.get(id)?.status).toBe(code === 0 ? 'SUCCEEDED' : 'FAILED');
}

function failedAs(rig: EngineRig, id: string) {
  const job = rig.store.jobs.get(id);
  return { status: job?.status, error_type: job?.error_type, message: job?.message, started: job?.start_time, attempts: rig.store.tasks.attemptsOfJob(id).length };
}

function pass(rig: EngineRig, now = T0): { placed: Record<string, number>; waits: Record<string, string> } {
  const p = planPlacements(rig.engine.view, { ...POLICY, now, unplaceableSince: new Map() });
  const placed: Record<string, number> = {};
  for (const x of p.placements) placed[x.task.jobId] = (placed[x.task.jobId] ?? 0) + 1;
  const waits: Record<string, string> = {};
  for (const [t, reason] of p.reasons) waits[t.jobId] ??= reason;
  return { placed, waits };
}

describe('operator controls in placement', () => {
  it.each(rows)('$name', (row) => {
    const rig = engineOnTempDb();
    for (const [name, spec] of Object.entries(row.nodes)) addNode(rig, name, spec, T0);
    for (const [id, spec] of row.jobs) expect(addJob(rig, id, spec, T0)).toBe(true);
    const got = pass(rig);
    expect(got.placed).toEqual(row.placed);
    for (const [id, reason] of Object.entries(row.waits ?? {})) expect(got.waits[id]).toMatch(reason);
  });

  it('after: runs once they succeeded; fails DEPENDENCY_FAILED, naming the job, without running when one fails; the failure runs down a chain; after-any runs either way', () => {
    seq = 0;
    const rig = engineOnTempDb();
    const node = addNode(rig, 'n1', { cpus: 1 }, T0);
    addJob(rig, 'a', { cpus: 1 }, T0);
    addJob(rig, 'b', { cpus: 1, after: ['a'] }, T0);
    run(rig, node, 'a', 0, T0 + 10);
    expect(rig.engine.view.job('b')?.waitingOn.size).toBe(0);
    run(rig, node, 'b', 0, T0 + 20);

    addJob(rig, 'c', { cpus: 1 }, T0 + 30);
    addJob(rig, 'd', { cpus: 1, after: ['c'] }, T0 + 30);
    addJob(rig, 'e', { cpus: 1, after: ['d', 'b'] }, T0 + 30);
    addJob(rig, 'f', { cpus: 1, afterAny: ['c'] }, T0 + 30);
    expect(pass(rig, T0 + 30).waits).toMatchObject({ d: 'waiting for c to succeed (PENDING)', e: 'waiting for d to succeed (PENDING)', f: 'waiting for c to end (PENDING)' });
    run(rig, node, 'c', 3, T0 + 40);
    expect(failedAs(rig, 'd')).toEqual({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED', message: 'job c, which it runs after, ended FAILED; --after needs it to succeed', started: null, attempts: 0 });
    expect(failedAs(rig, 'e')).toMatchObject({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED', message: expect.stringMatching(/^job d, which it runs after, ended FAILED/), attempts: 0 });
    expect(rig.logs.read('d', 0, 0, 10_000).map((x) => x.data.toString()).join('')).toMatch(/DEPENDENCY_FAILED: job c/);
    run(rig, node, 'f', 0, T0 + 50);

    // Submitted after its dependency already failed, or was stopped: it fails at once.
    addJob(rig, 'g', { cpus: 1, after: ['c'] }, T0 + 60);
    expect(failedAs(rig, 'g')).toMatchObject({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED' });
    addJob(rig, 'h', { cpus: 1, held: true }, T0 + 60);
    addJob(rig, 'i', { cpus: 1, after: ['h'] }, T0 + 60);
    rig.engine.stopJob('h');
    expect(failedAs(rig, 'i')).toMatchObject({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED', message: expect.stringMatching(/ended STOPPED/) });
    // ...and after one that already succeeded it simply runs.
    addJob(rig, 'j', { cpus: 1, after: ['a', 'b'], afterAny: ['c'] }, T0 + 70);
    expect(pass(rig, T0 + 70).placed).toEqual({ j: 1 });
  });

  it('after: refuses the job itself and jobs that do not exist, recording nothing; a restart keeps the waits', () => {
    const rig = engineOnTempDb();
    addNode(rig, 'n1', { cpus: 1 }, T0);
    for (const [id, spec, message] of [
      ['self', { after: ['self'] }, 'job self cannot run after itself'],
      ['ghost', { afterAny: ['nope'] }, 'job nope, which ghost would run after, does not exist'],
    ] as [string, JobSpec, string][]) {
      expect(() => addJob(rig, id, spec, T0)).toThrow(expect.objectContaining({ code: 'INVALID_DEPENDENCY', message }));
      expect(rig.store.jobs.get(id)).toBeUndefined();
    }
    addJob(rig, 'a', { cpus: 1, held: true }, T0);
    addJob(rig, 'b', { cpus: 1, after: ['a'] }, T0);
    const restarted = restartEngine(rig);
    expect(pass(restarted).waits.b).toBe('waiting for a to succeed (PENDING)');
    restarted.engine.stopJob('a');
    expect(restarted.store.jobs.get('b')).toMatchObject({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED' });
    expect(restarted.engine.view.jobCount).toBe(0);
  });

  it('a long chain fails link by link without deep recursion', () => {
    const rig = engineOnTempDb();
    addNode(rig, 'n1', { cpus: 1 }, T0);
    addJob(rig, 'j0', { held: true }, T0);
    for (let i = 1; i <= 2000; i++) addJob(rig, `j${i}`, { after: [`j${i - 1}`] }, T0);
    rig.engine.stopJob('j0');
    expect(rig.store.jobs.get('j2000')).toMatchObject({ status: 'FAILED', error_type: 'DEPENDENCY_FAILED' });
    expect(rig.engine.view.jobCount).toBe(0);
  });

  it('max_concurrent: a task that ends lets the next one in, never more than K placed', () => {
    seq = 0;
    const rig = engineOnTempDb();
    const node = addNode(rig, 'n1', { cpus: 8 }, T0);
    addJob(rig, 'sweep', { cpus: 1, parallel: 5, maxConcurrent: 2 }, T0);
    const placedNow = () => rig.engine.view.tasksOfJob('sweep').filter((t) => t.state !== 'PENDING').map((t) => t.idx);
    rig.engine.schedule(undefined, T0);
    expect(placedNow()).toEqual([0, 1]);
    let at = T0;
    for (const next of [[1, 2], [2, 3], [3, 4], [4]]) {
      const first = placedNow()[0] as number;
      at += 10;
      rig.engine.applyReport(node, [started(`sweep:${first}`, at), exited(`sweep:${first}`, at + 1, 0)], null, at + 1);
      rig.engine.schedule(undefined, at + 2);
      expect(placedNow()).toEqual(next);
    }
  });

  it.each([
    ['0-4', [0, 1, 2, 3, 4], null],
    ['0-9:3', [0, 3, 6, 9], null],
    ['1,5,9', [1, 5, 9], null],
    ['0-2,10-20:5%2', [0, 1, 2, 10, 15, 20], 2],
    [' 7 ', [7], null],
    ['3,1,3,2', [1, 2, 3], null],
  ] as const)('array spec %s', (spec, indices, max) => {
    expect(parseArraySpec(spec)).toEqual({ indices, maxConcurrent: max });
  });

  it.each(['', '5-1', '0-9:0', '1-', 'a', '0-99%0', '0-99%2%3', '0-2000000', '0-20000', '-1', '1,,2'])('array spec %j is refused with an example', (spec) => {
    expect(() => parseArraySpec(spec)).toThrow(expect.objectContaining({ code: 'INVALID_REQUEST', message: expect.stringMatching(/e\.g\. 0-99, 0-99:2/) }));
  });

  it('hold and release: only a pending job; the state survives a restart; a released job runs', () => {
    const rig = engineOnTempDb();
    addNode(rig, 'n1', { cpus: 1 }, T0);
    addJob(rig, 'a', { cpus: 1 }, T0);
    addJob(rig, 'b', { cpus: 1 }, T0);
    rig.engine.setHeld('b', true, T0);
    rig.engine.setHeld('b', true, T0); // twice: no change, no error
    expect(rig.store.jobs.get('b')?.held).toBe(1);
    rig.engine.schedule(undefined, T0);
    expect(rig.store.tasks.get('a', 0)?.state).toBe('ASSIGNED');
    // `a` is assigned, so no longer only waiting: it still counts as PENDING until it starts.
    const restarted = restartEngine(rig);
    expect(restarted.engine.view.job('b')?.held).toBe(true);
    expect(pass(restarted).waits.b).toMatch(/^held/);
    restarted.engine.setHeld('b', false, T0 + 5000);
    expect(restarted.store.jobs.get('b')?.held).toBe(0);
    expect(pass(restarted).waits.b).toMatch(/^needs 1 CPU/);
    // A job that has ended can be neither held nor released.
    restarted.engine.stopJob('b');
    for (const held of [true, false]) {
      let err: unknown;
      try {
        restarted.engine.setHeld('b', held);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RaysubError);
      expect((err as RaysubError).code).toBe('JOB_NOT_PENDING');
    }
  });
});
