/**
 * What the operator controls about when a job may start — held jobs, dependencies, array
 * throttles — decided in process: each row builds an engine on a temporary SQLite file, records
 * jobs as the API does and runs one placement pass. The end-to-end side is in ops-jobs.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { RaysubError } from '../src/shared/errors.js';
import { planPlacements } from '../src/head/placement.js';
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
];

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
