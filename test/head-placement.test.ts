/**
 * The head's placement decisions, in process: each row builds an engine on a temporary SQLite
 * file, registers nodes and records jobs as the agents and the API do, and runs one placement pass
 * at a time it passes in. Only the decision is under test here; the end-to-end tests run real
 * agents.
 */
import { describe, expect, it } from 'vitest';
import { neverReason, placeInjob, planPlacements, type SchedulingPass } from '../src/head/placement.js';
import { addJob, addNode, engineOnTempDb, restartEngine, type EngineRig, type JobSpec, type NodeSpec } from './helpers/head.js';

const T0 = 1_800_000_000_000;
const POLICY = { starvationMs: 60_000, unschedulableGraceMs: 60_000 };

interface Row {
  name: string;
  nodes: Record<string, NodeSpec & { draining?: boolean; unhealthy?: string }>;
  /** Jobs placed by a pass at T0 before the others are submitted. */
  running?: [id: string, spec: JobSpec][];
  jobs: [id: string, spec: JobSpec][];
  /** Seconds after T0 at which the pass runs. */
  at?: number;
  /** Per job, where its tasks go: node name, and `:gpu,gpu` when it got GPUs. */
  placed: Record<string, string[]>;
  /** Per job, why its first waiting task waits. */
  waits?: Record<string, RegExp>;
  /** Jobs that fail at submission as UNSCHEDULABLE, with the reason. */
  refused?: Record<string, RegExp>;
}

const rows: Row[] = [
  {
    name: 'higher priority first',
    nodes: { n1: { cpus: 2 } },
    jobs: [
      ['low', { cpus: 2 }],
      ['high', { cpus: 2, priority: 5 }],
    ],
    placed: { high: ['n1'] },
    waits: { low: /^needs 2 CPUs; largest free: 0 on n1$/ },
  },
  {
    name: 'then the older job',
    nodes: { n1: { cpus: 2 } },
    jobs: [
      ['first', { cpus: 2 }],
      ['second', { cpus: 2 }],
    ],
    placed: { first: ['n1'] },
    waits: { second: /needs 2 CPUs/ },
  },
  {
    name: 'backfills a small task past a large one that does not fit',
    nodes: { n1: { cpus: 4 } },
    running: [['busy', { cpus: 3 }]],
    jobs: [
      ['large', { cpus: 4 }],
      ['small', { cpus: 1 }],
    ],
    placed: { small: ['n1'] },
    waits: { large: /^needs 4 CPUs; largest free: 1 on n1$/ },
  },
  {
    name: 'a starving task reserves the node that could hold it: nothing behind it lands there',
    nodes: { n1: { cpus: 4 } },
    running: [['busy', { cpus: 3 }]],
    jobs: [
      ['large', { cpus: 4 }],
      ['small', { cpus: 1 }],
    ],
    at: 61,
    placed: {},
    waits: { large: /^needs 4 CPUs; largest free: 1 on n1; holds a reservation on n1$/, small: /^needs 1 CPU; n1 is held for a task that has waited longer$/ },
  },
  {
    name: 'the reservation leaves other nodes to the tasks behind it',
    nodes: { n1: { cpus: 4 }, n2: { cpus: 2 } },
    running: [['busy', { cpus: 3 }]],
    jobs: [
      ['large', { cpus: 4 }],
      ['small', { cpus: 1 }],
    ],
    at: 61,
    placed: { small: ['n2'] },
    waits: { large: /holds a reservation on n1$/ },
  },
  {
    name: 'fractional GPUs share the fullest device that fits; a whole GPU needs a free device',
    nodes: { g: { cpus: 4, gpus: 2 } },
    jobs: [
      ['half', { cpus: 0, gpus: 0.5, parallel: 3 }],
      ['whole', { cpus: 0, gpus: 1 }],
    ],
    placed: { half: ['g:0', 'g:0', 'g:1'] },
    waits: { whole: /needs 1 GPUs/ },
  },
  {
    name: 'whole GPUs are disjoint devices',
    nodes: { g: { cpus: 4, gpus: 3 } },
    jobs: [['two', { cpus: 0, gpus: 2, parallel: 2 }]],
    placed: { two: ['g:0,1'] },
    waits: { two: /needs 2 GPUs/ },
  },
  {
    name: 'a draining node gets nothing new',
    nodes: { big: { cpus: 8, draining: true }, small: { cpus: 1 } },
    jobs: [['j', { cpus: 1, parallel: 2 }]],
    placed: { j: ['small'] },
  },
  {
    name: 'an unhealthy node (its work dir takes no writes) gets nothing new',
    nodes: { big: { cpus: 8, unhealthy: "work dir not writable: EROFS: read-only file system, open '/w/tasks/.probe'" }, small: { cpus: 1 } },
    jobs: [['j', { cpus: 1, parallel: 2 }]],
    placed: { j: ['small'] },
    waits: { j: /^needs 1 CPUs?; largest free: 0 on small$/ },
  },
  {
    name: 'with every node unhealthy a job waits (never UNSCHEDULABLE) and says why',
    nodes: { a: { cpus: 4, unhealthy: "work dir not writable: ENOSPC: no space left on device, open '/w/tasks/.probe'" } },
    jobs: [['j', { cpus: 1 }]],
    placed: {},
    waits: { j: /^needs 1 CPU; no node takes work now \(a is unhealthy: work dir not writable: ENOSPC: no space left on device/ },
  },
  {
    name: 'spreads: the node left with the most free CPUs',
    nodes: { a: { cpus: 2 }, b: { cpus: 4 } },
    jobs: [['j', { cpus: 1, parallel: 3 }]],
    placed: { j: ['b', 'b', 'a'] },
  },
  {
    name: 'task slots bound tasks that ask for no CPU',
    nodes: { n1: { cpus: 8, slots: 2 } },
    jobs: [['zero', { cpus: 0, parallel: 5 }]],
    placed: { zero: ['n1', 'n1'] },
    waits: { zero: /^needs a task slot; largest free: 0 task slots on n1$/ },
  },
  {
    name: 'task slots across jobs and nodes',
    nodes: { a: { cpus: 8, slots: 1 }, b: { cpus: 1, slots: 3 } },
    jobs: [
      ['one', { cpus: 0, parallel: 2 }],
      ['two', { cpus: 0, parallel: 3 }],
    ],
    placed: { one: ['a', 'b'], two: ['b', 'b'] },
    waits: { two: /task slot/ },
  },
  {
    name: 'a node with no task slots at all can never run anything',
    nodes: { n1: { cpus: 8, slots: 0 } },
    jobs: [['j', { cpus: 0 }]],
    placed: {},
    refused: { j: /^no node can ever provide a task slot/ },
  },
  {
    name: 'sandbox.require picks a node strong enough, even with fewer CPUs free',
    nodes: { weak: { cpus: 8, sandbox: 'process' }, strong: { cpus: 1, sandbox: 'bwrap' } },
    jobs: [
      ['strict', { cpus: 1, runtimeEnv: { sandbox: { require: 'bwrap' } } }],
      ['any', { cpus: 1 }],
      ['process', { cpus: 1, runtimeEnv: { sandbox: { require: 'process' } } }],
    ],
    placed: { strict: ['strong'], any: ['weak'], process: ['weak'] },
  },
  {
    name: 'network isolation needs bubblewrap',
    nodes: { weak: { cpus: 8, sandbox: 'process' }, strong: { cpus: 1, sandbox: 'bwrap' } },
    jobs: [['offline', { cpus: 1, parallel: 2, runtimeEnv: { sandbox: { network: 'none' } } }]],
    placed: { offline: ['strong'] },
    waits: { offline: /^needs 1 CPUs; largest free: 0 on strong$/ },
  },
  {
    name: 'a sandbox no node has: refused at submission, unless the job waits for capacity',
    nodes: { weak: { cpus: 8, sandbox: 'process' } },
    jobs: [
      ['strict', { runtimeEnv: { sandbox: { require: 'bwrap' } } }],
      ['patient', { runtimeEnv: { sandbox: { require: 'bwrap' } }, waitForCapacity: true }],
    ],
    placed: {},
    refused: { strict: /^no node can ever provide a "bwrap" sandbox \(the nodes have: process\)$/ },
    waits: { patient: /^no node can ever provide a "bwrap" sandbox \(the nodes have: process\); waiting for one to join$/ },
  },
  {
    name: 'more CPUs than any node: refused at submission with the largest node',
    nodes: { a: { cpus: 2 }, b: { cpus: 4 } },
    jobs: [['huge', { cpus: 8 }]],
    placed: {},
    refused: { huge: /^no node can ever provide 8 CPUs \(largest node b has 4\)$/ },
  },
  {
    name: "a job that asks for no resources runs on the head node, as Ray's driver does, though a worker has more free",
    nodes: { head: { cpus: 2, head: true }, w1: { cpus: 8 } },
    jobs: [
      ['bare', { cpus: 0, driverOnHead: true }],
      ['one-cpu', { cpus: 1 }],
    ],
    placed: { bare: ['head'], 'one-cpu': ['w1'] },
  },
  {
    name: "and waits, saying why, while the head's own agent is not there",
    nodes: { w1: { cpus: 8 } },
    jobs: [['bare', { cpus: 0, driverOnHead: true, waitForCapacity: true }]],
    placed: {},
    waits: { bare: /^no node can ever provide the head node \(.*RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES=1.*\): the head's own agent is not registered; waiting for one to join$/ },
  },
];

function describePass(rig: EngineRig, pass: SchedulingPass): { placed: Record<string, string[]>; waits: Record<string, string> } {
  const placed: Record<string, string[]> = {};
  for (const p of pass.placements) {
    const name = rig.engine.view.node(p.nodeId)?.name ?? p.nodeId;
    (placed[p.task.jobId] ??= []).push(p.gpuIds.length ? `${name}:${p.gpuIds.join(',')}` : name);
  }
  const waits: Record<string, string> = {};
  for (const [t, reason] of pass.reasons) waits[t.jobId] ??= reason;
  return { placed, waits };
}

describe('placement', () => {
  it.each(rows)('$name', (row) => {
    const rig = engineOnTempDb();
    for (const [name, spec] of Object.entries(row.nodes)) {
      const id = addNode(rig, name, spec, T0);
      if (spec.draining) rig.engine.drainNode(id);
      if (spec.unhealthy) rig.engine.setUnhealthy(id, { reason: spec.unhealthy, since: T0 });
    }
    for (const [id, spec] of row.running ?? []) addJob(rig, id, spec, T0);
    if (row.running) rig.engine.schedule(undefined, T0);
    for (const [id, spec] of row.jobs) expect(addJob(rig, id, spec, T0)).toBe(true);
    for (const [id] of row.jobs) {
      const job = rig.store.jobs.get(id);
      const refused = row.refused?.[id];
      if (refused) expect({ status: job?.status, error_type: job?.error_type, message: job?.message }).toMatchObject({ status: 'FAILED', error_type: 'UNSCHEDULABLE', message: expect.stringMatching(refused) });
      else expect(job?.status).toBe('PENDING');
    }
    const pass = planPlacements(rig.engine.view, { ...POLICY, now: T0 + (row.at ?? 0) * 1000, unplaceableSince: new Map() });
    const got = describePass(rig, pass);
    expect(got.placed).toEqual(row.placed);
    for (const [id, reason] of Object.entries(row.waits ?? {})) expect(got.waits[id]).toMatch(reason);
    expect(pass.fail).toEqual([]);
  });

  it('lets what a job held to the head node submits run on any node', () => {
    const rig = engineOnTempDb();
    addNode(rig, 'head', { cpus: 1, head: true }, T0);
    addNode(rig, 'w1', { cpus: 8 }, T0);
    addJob(rig, 'bare', { cpus: 0, driverOnHead: true }, T0);
    const job = rig.engine.view.job('bare');
    if (!job) throw new Error('no live job');
    const choice = placeInjob(rig.engine.view, job, { cpus: 4, gpus: 0, memory: 0, custom: {} });
    expect(choice.kind === 'placed' ? rig.engine.view.node(choice.nodeId)?.name : choice.kind).toBe('w1');
  });

  it('gives an unhealthy node work again once its agent says it is healthy, but never lifts an operator\'s cordon', () => {
    const rig = engineOnTempDb();
    const a = addNode(rig, 'a', { cpus: 4 }, T0);
    const b = addNode(rig, 'b', { cpus: 4 }, T0);
    addJob(rig, 'j', { cpus: 1, parallel: 2 }, T0);
    const sick = { reason: "work dir not writable: EROFS: read-only file system, open '/w/tasks/.probe'", since: T0 };
    rig.engine.setUnhealthy(a, sick);
    rig.engine.setUnhealthy(b, sick);
    rig.engine.setCordon('b', true, T0);
    const placed = (): Record<string, string[]> => describePass(rig, planPlacements(rig.engine.view, { ...POLICY, now: T0, unplaceableSince: new Map() })).placed;
    const job = rig.engine.view.job('j');
    if (!job) throw new Error('no live job');
    const injob = (): string => {
      const c = placeInjob(rig.engine.view, job, { cpus: 1, gpus: 0, memory: 0, custom: {} });
      return c.kind === 'placed' ? (rig.engine.view.node(c.nodeId)?.name ?? '?') : c.kind;
    };
    expect([placed(), injob()]).toEqual([{}, 'wait']);
    // Both agents' probes pass: a takes work at once; b stays cordoned until the operator lifts it.
    rig.engine.setUnhealthy(a, null);
    rig.engine.setUnhealthy(b, null);
    expect([placed(), injob()]).toEqual([{ j: ['a', 'a'] }, 'a']);
    expect(rig.engine.view.node(b)).toMatchObject({ draining: true, unhealthy: null });
    rig.engine.setCordon('b', false, T0);
    expect(placed().j?.sort()).toEqual(['a', 'b']);
    // A cordoned node that turns unhealthy and recovers is still cordoned.
    rig.engine.setCordon('a', true, T0);
    rig.engine.setUnhealthy(a, sick);
    rig.engine.setUnhealthy(a, null);
    expect(rig.engine.view.node(a)).toMatchObject({ draining: true, unhealthy: null });
    expect(placed()).toEqual({ j: ['b', 'b'] });
  });

  it('gives new work only to nodes that contacted this head since it started', () => {
    const rig = engineOnTempDb();
    const a = addNode(rig, 'a', { cpus: 1 }, T0);
    addNode(rig, 'b', { cpus: 4 }, T0);
    // The head restarts: a second engine on the same database.
    const restarted = restartEngine(rig);
    addJob(restarted, 'j', { cpus: 1, parallel: 2 }, T0);
    let pass = planPlacements(restarted.engine.view, { ...POLICY, now: T0, unplaceableSince: new Map() });
    expect(describePass(restarted, pass)).toEqual({ placed: {}, waits: { j: 'needs 1 CPU; waiting for nodes to reconnect after the head restarted' } });
    // a reports: it gets work; b (larger, but silent since the restart) still gets none.
    restarted.engine.renewLease(a, T0);
    pass = planPlacements(restarted.engine.view, { ...POLICY, now: T0, unplaceableSince: new Map() });
    expect(describePass(restarted, pass).placed).toEqual({ j: ['a'] });
  });

  it('re-evaluates a queued job when its only capable node leaves: it waits the grace period with the reason, then fails', () => {
    const rig = engineOnTempDb();
    const gpu = addNode(rig, 'gpu', { cpus: 2, gpus: 1 }, T0);
    addNode(rig, 'cpu', { cpus: 2 }, T0);
    addJob(rig, 'busy', { cpus: 0, gpus: 1 }, T0);
    rig.engine.schedule(undefined, T0);
    addJob(rig, 'queued', { cpus: 0, gpus: 1 }, T0);
    addJob(rig, 'patient', { cpus: 0, gpus: 1, waitForCapacity: true }, T0);
    rig.engine.nodeLost(gpu, 'node gpu stopped sending heartbeats', T0 + 1000);
    rig.engine.schedule(undefined, T0 + 2000);
    expect(rig.store.jobs.get('busy')?.status).toBe('FAILED');
    const reason = (id: string) => rig.engine.view.tasksOfJob(id)[0]?.reason;
    expect(reason('queued')).toBe('no node can ever provide 1 GPUs (largest node cpu has 0); fails as UNSCHEDULABLE in 60s unless a node that can run it joins');
    expect(reason('patient')).toBe('no node can ever provide 1 GPUs (largest node cpu has 0); waiting for one to join');
    rig.engine.schedule(undefined, T0 + 31_000);
    expect(reason('queued')).toMatch(/in 31s unless/);
    rig.engine.schedule(undefined, T0 + 62_001);
    expect(rig.store.jobs.get('queued')).toMatchObject({ status: 'FAILED', error_type: 'UNSCHEDULABLE', message: 'no node can ever provide 1 GPUs (largest node cpu has 0)' });
    expect(rig.store.jobs.get('patient')?.status).toBe('PENDING');
    // A capable node joining in time saves a job.
    addJob(rig, 'late', { cpus: 0, gpus: 1 }, T0 + 62_001);
    expect(rig.store.jobs.get('late')?.status).toBe('FAILED');
    addNode(rig, 'gpu2', { cpus: 2, gpus: 1 }, T0 + 63_000);
    rig.engine.schedule(undefined, T0 + 63_000);
    expect(rig.store.tasks.get('patient', 0)?.state).toBe('ASSIGNED');
  });

  it('counts in-job work against task slots and resources', () => {
    const rig = engineOnTempDb();
    const n1 = addNode(rig, 'n1', { cpus: 4, slots: 3 }, T0);
    rig.engine.setInjobUsage(n1, { cpus: 20_000, memory: 0, gpus: [], custom: {}, tasks: 2 });
    addJob(rig, 'j', { cpus: 0, parallel: 3 }, T0);
    const pass = planPlacements(rig.engine.view, { ...POLICY, now: T0, unplaceableSince: new Map() });
    expect(describePass(rig, pass).placed).toEqual({ j: ['n1'] });
    rig.engine.setInjobUsage(n1, { cpus: 0, memory: 0, gpus: [], custom: {}, tasks: 0 });
    expect(rig.engine.view.node(n1)?.free).toMatchObject({ cpus: 40_000, tasks: 3 });
  });

  it('places in-job tasks the same way: open nodes only, sandbox constraints, task slots', () => {
    const rig = engineOnTempDb();
    const weak = addNode(rig, 'weak', { cpus: 8, sandbox: 'process' }, T0);
    const strong = addNode(rig, 'strong', { cpus: 1, slots: 1, sandbox: 'bwrap' }, T0);
    addJob(rig, 'strict', { cpus: 0, runtimeEnv: { sandbox: { require: 'bwrap' } }, waitForCapacity: true }, T0);
    addJob(rig, 'any', { cpus: 0, waitForCapacity: true }, T0);
    const job = (id: string) => {
      const j = rig.engine.view.job(id);
      if (!j) throw new Error(`no job ${id}`);
      return j;
    };
    const req = { cpus: 1, gpus: 0, memory: 0, custom: {} };
    expect(placeInjob(rig.engine.view, job('strict'), req)).toEqual({ kind: 'placed', nodeId: strong, gpuIds: [] });
    expect(placeInjob(rig.engine.view, job('any'), req)).toEqual({ kind: 'placed', nodeId: weak, gpuIds: [] });
    rig.engine.holdInjob(strong, 'x', req, []);
    expect(placeInjob(rig.engine.view, job('strict'), req)).toEqual({ kind: 'wait' });
    rig.engine.releaseInjob(strong, 'x');
    rig.engine.releaseInjob(strong, 'x');
    expect(rig.engine.view.node(strong)?.free).toMatchObject({ cpus: 10_000, tasks: 1 });
    expect(placeInjob(rig.engine.view, job('strict'), { ...req, cpus: 2 })).toEqual({ kind: 'never', reason: 'no node that provides a "bwrap" sandbox can ever provide 2 CPUs (largest node strong has 1; weak could, but lacks a "bwrap" sandbox)' });
    rig.engine.drainNode(strong);
    expect(placeInjob(rig.engine.view, job('strict'), req)).toEqual({ kind: 'wait' });
    expect(neverReason(rig.engine.view, job('strict'))).toBeNull();
  });
});
