/**
 * Decisions of the Ray core API on their own, in process: where one queued task goes (a real node
 * ledger, placement group bundles, a job's CPU limit, node affinity), the ledger's holdings inside
 * a bundle, the agent's questions to the head, and the head's directory of names and groups.
 */
import { describe, expect, it } from 'vitest';
import { NodeLedger } from '../src/agent/injob/ledger.js';
import { Requests, MAX_PENDING, type ReplyBody } from '../src/agent/injob/requests.js';
import { placeTask, type PlaceDecision } from '../src/agent/injob/taskPlacement.js';
import type { JobState } from '../src/agent/injob/jobState.js';
import { enqueueByDepth, type Bundle, type Task } from '../src/agent/injob/jobState.js';
import { InjobDirectory, heldKey, type Group } from '../src/head/injobDirectory.js';
import type { InjobRequest, Placement, Usage } from '../src/shared/protocol/index.js';
import { applyPlacement, capacityFromTotals, toUnits, UNLIMITED_TASK_SLOTS, type Capacity, type TaskRequest } from '../src/shared/resources.js';
import { silentLogger } from '../src/shared/log.js';

const req = (cpus: number, custom: Record<string, number> = {}): TaskRequest => ({ cpus, gpus: 0, memory: 0, custom });
const totals = { num_cpus: 2, num_gpus: 0, memory: 8e9, resources: {} };
const usage = (cpus: number): Usage => ({ cpus: toUnits(cpus), memory: 8e9, gpus: [], custom: {} });

/** A job's in-job state as placement reads it (its id, its bundles here, its CPU limit). */
function job(cpuLimit: number | null = null): JobState {
  return { jobId: 'j1', bundles: new Map<string, Bundle>(), cpuLimit: cpuLimit === null ? null : toUnits(cpuLimit) } as unknown as JobState;
}

function task(j: JobState, r: TaskRequest, o: { origin?: 'local' | 'head'; placement?: Placement } = {}): Task {
  const spec = { id: 't1', kind: 'task', fn: { module: 'm', name: 'f' }, name: 'f', resources: r, max_retries: 0, retry_exceptions: false, deps: [], args_len: 0, ...(o.placement ? { placement: o.placement } : {}) };
  return { job: j, spec, origin: o.origin ?? 'local' } as unknown as Task;
}

function reserve(ledger: NodeLedger, j: JobState, group: string, index: number, r: TaskRequest): Bundle {
  const holding = ledger.take(r, j.jobId, []);
  const free: Capacity = { cpus: 0, memory: 0, gpus: [], custom: {}, tasks: UNLIMITED_TASK_SLOTS };
  applyPlacement(free, r, [], 1);
  const b: Bundle = { job: j, group, index, holding, free };
  j.bundles.set(`${group}:${index}`, b);
  return b;
}

describe('where a queued in-job task goes', () => {
  const cases: { name: string; setup: (l: NodeLedger) => { t: Task; remote?: Usage[] }; want: PlaceDecision['kind']; spillable?: boolean }[] = [
    { name: 'it fits here: it runs', setup: () => ({ t: task(job(), req(1)) }), want: 'run' },
    { name: 'the node is full and no other has room: it waits', setup: (l) => (l.take(req(2), 'other', []), { t: task(job(), req(1)), remote: [usage(0)] }), want: 'wait', spillable: true },
    { name: 'the node is full, another has room: to the head', setup: (l) => (l.take(req(2), 'other', []), { t: task(job(), req(1)), remote: [usage(2)] }), want: 'spill' },
    { name: 'no node like this one could ever hold it: to the head', setup: () => ({ t: task(job(), req(4)) }), want: 'spill' },
    { name: 'the head placed it here and it does not fit yet: it waits', setup: (l) => (l.take(req(2), 'other', []), { t: task(job(), req(1), { origin: 'head' }), remote: [usage(2)] }), want: 'wait' },
    { name: 'its job is at its CPU limit: others may go first', setup: (l) => (l.take(req(1), 'j1', []), { t: task(job(1), req(1)) }), want: 'skip' },
    { name: 'a limited job whose task the node could never hold: to the head', setup: () => ({ t: task(job(1), req(4)) }), want: 'spill' },
    { name: 'a limited job under its limit on a full node: waits here, never spills', setup: (l) => (l.take(req(2), 'other', []), { t: task(job(3), req(1)), remote: [usage(2)] }), want: 'wait' },
    { name: 'pinned to another node: to the head', setup: () => ({ t: task(job(), req(1), { placement: { node: 'node_far', soft: false } }) }), want: 'spill' },
    { name: 'pinned here, the node full: it waits', setup: (l) => (l.take(req(2), 'other', []), { t: task(job(), req(1), { placement: { node: 'node_me', soft: false } }), remote: [usage(2)] }), want: 'wait' },
    { name: 'its group has no bundle here: to the head', setup: () => ({ t: task(job(), req(1), { placement: { group: 'pg1', bundle: 0 } }) }), want: 'spill' },
    { name: 'its group has no bundle here and the head sent it: the group is gone', setup: () => ({ t: task(job(), req(1), { origin: 'head', placement: { group: 'pg1', bundle: 0 } }) }), want: 'fail' },
    {
      name: 'its bundle is here with room: it runs in the bundle',
      setup: (l) => {
        const j = job();
        reserve(l, j, 'pg1', 0, req(1));
        return { t: task(j, req(1), { placement: { group: 'pg1', bundle: 0 } }) };
      },
      want: 'run',
    },
    {
      name: 'its bundle is here, full: it waits',
      setup: (l) => {
        const j = job();
        const b = reserve(l, j, 'pg1', 0, req(1));
        l.tryTakeWithin(b.free, req(1), 'j1');
        return { t: task(j, req(1), { placement: { group: 'pg1', bundle: -1 } }) };
      },
      want: 'wait',
    },
    {
      name: 'it asks for more than its bundle holds: it can never run',
      setup: (l) => {
        const j = job();
        reserve(l, j, 'pg1', 0, req(1));
        return { t: task(j, req(2), { placement: { group: 'pg1', bundle: 0 } }) };
      },
      want: 'fail',
    },
  ];

  it.each(cases)('$name', ({ setup, want, spillable }) => {
    const ledger = new NodeLedger(totals);
    const { t, remote } = setup(ledger);
    const d = placeTask(t, { ledger, me: 'node_me', remoteFree: () => remote ?? [] });
    expect(d.kind).toBe(want);
    if (spillable !== undefined && d.kind === 'wait') expect(d.spillable).toBe(spillable);
    if (d.kind === 'run') ledger.release(d.holding);
    // Whatever was decided, the node's books add up.
    expect(ledger.imbalance()).toBeNull();
  });
});

describe('the order of an in-job queue', () => {
  const jobs = { a: {}, b: {} } as unknown as Record<string, JobState>;
  // `a1:2`: task a1 of job a at depth 2 (no depth: placed by the head, depth 0).
  const named = (s: string): Task => {
    const [id = '', depth] = s.split(':');
    return { job: jobs[id.slice(0, 1)], spec: { id }, ...(depth === undefined ? {} : { depth: Number(depth) }) } as unknown as Task;
  };
  const cases: { name: string; queued: string[]; add: string; want: string[] }[] = [
    { name: 'into an empty queue', queued: [], add: 'a1:0', want: ['a1'] },
    { name: 'the same depth: after the others', queued: ['a1:0', 'a2:0'], add: 'a3:0', want: ['a1', 'a2', 'a3'] },
    { name: "a task's task: before its submitter's peers", queued: ['a1:0', 'a2:0'], add: 'a3:1', want: ['a3', 'a1', 'a2'] },
    { name: 'deeper still: first', queued: ['a1:1', 'a2:0'], add: 'a3:2', want: ['a3', 'a1', 'a2'] },
    { name: 'among its depth: in submission order', queued: ['a1:2', 'a2:1', 'a3:1', 'a4:0'], add: 'a5:1', want: ['a1', 'a2', 'a3', 'a5', 'a4'] },
    { name: 'shallower: after the deeper ones', queued: ['a1:3', 'a2:2'], add: 'a3:0', want: ['a1', 'a2', 'a3'] },
    { name: 'no depth counts as 0 (placed by the head)', queued: ['a1:1', 'a2'], add: 'a3', want: ['a1', 'a2', 'a3'] },
    { name: "never ahead of another job's task", queued: ['a1:0', 'b1:0', 'a2:0'], add: 'a3:1', want: ['a1', 'b1', 'a3', 'a2'] },
    { name: "another job's deep task waits behind this job's", queued: ['a1:0'], add: 'b1:5', want: ['a1', 'b1'] },
  ];

  it.each(cases)('$name', ({ queued, add, want }) => {
    const q = queued.map(named);
    enqueueByDepth(q, named(add));
    expect(q.map((t) => t.spec.id)).toEqual(want);
  });
});

describe('holdings inside a placement group bundle', () => {
  it('take from and give back to the bundle, not the node; lending a blocked task\'s CPUs stays in the bundle', () => {
    const ledger = new NodeLedger(totals);
    const j = job();
    const b = reserve(ledger, j, 'pg1', 0, req(2));
    const free = ledger.free.cpus;
    const h = ledger.tryTakeWithin(b.free, req(1), 'j1');
    expect(h).not.toBeNull();
    expect(b.free.cpus).toBe(toUnits(1));
    expect(ledger.free.cpus).toBe(free);
    if (!h) return;
    ledger.lend(h);
    expect(b.free.cpus).toBe(toUnits(2));
    ledger.reclaim(h);
    ledger.release(h);
    ledger.release(h);
    expect(b.free.cpus).toBe(toUnits(2));
    expect(ledger.cpusHeldBy('j1')).toBe(toUnits(2));
    ledger.release(b.holding);
    expect(ledger.free.cpus).toBe(toUnits(2));
    expect(ledger.imbalance()).toBeNull();
  });
});

describe("the agent's questions to the head", () => {
  function setup() {
    const sent: InjobRequest[] = [];
    const r = new Requests({ log: silentLogger(), toHead: (q) => void sent.push(q), cluster: () => [], limitCpus: () => undefined, cpuLimit: () => null });
    const replies: [number, ReplyBody][] = [];
    const target = { reply: (id: number, body: ReplyBody) => void replies.push([id, body]), closed: false };
    return { r, sent, replies, target };
  }

  it('passes questions on, answers each once when the head does, and refuses past MAX_PENDING waiting for one job', () => {
    const { r, sent, replies, target } = setup();
    for (let i = 0; i <= MAX_PENDING; i++) r.ask('j1', target, i, { op: 'get_actor', name: 'a', namespace: 'n' }, Buffer.alloc(0));
    expect(sent).toHaveLength(MAX_PENDING);
    expect(replies).toEqual([[MAX_PENDING, { ok: false, error: { type: 'RaySystemError', message: expect.stringMatching(/questions waiting/) } }]]);
    // Another job is not held back by this one.
    r.ask('j2', target, 1, { op: 'list_actors' }, Buffer.alloc(0));
    expect(sent).toHaveLength(MAX_PENDING + 1);
    const first = sent[0];
    if (!first) return;
    r.answered([{ req: first.req, ok: true, value: ['x'] }]);
    r.answered([{ req: first.req, ok: true, value: ['again'] }]);
    expect(replies.at(-1)).toEqual([0, { ok: true, value: ['x'] }]);
    expect(replies).toHaveLength(2);
    // One answered: room for one more.
    r.ask('j1', target, 9, { op: 'list_actors' }, Buffer.alloc(0));
    expect(sent).toHaveLength(MAX_PENDING + 2);
    r.close();
  });

  it('names an actor only with a handle of a sane size', () => {
    const { r, sent, replies, target } = setup();
    const call = { op: 'name_actor' as const, name: 'a', namespace: 'n', get_if_exists: false, detached: false, actor_id: 'abc' };
    r.ask('j1', target, 1, call, Buffer.alloc(0));
    r.ask('j1', target, 2, call, Buffer.alloc(64 * 1024 + 1));
    expect(replies.map(([, b]) => b.error?.type)).toEqual(['ValueError', 'ValueError']);
    r.ask('j1', target, 3, call, Buffer.from('handle'));
    expect(sent[0]?.call).toMatchObject({ op: 'name_actor', handle: Buffer.from('handle').toString('base64') });
    r.close();
  });
});

describe("the head's directory of names and placement groups", () => {
  function setup(nodes: { id: string; cpus: number }[]) {
    const free = new Map(nodes.map((n) => [n.id, capacityFromTotals({ ...totals, num_cpus: n.cpus })]));
    const held = new Map<string, { node: string; req: TaskRequest }>();
    const events: string[] = [];
    const d = new InjobDirectory({
      nodes: () => [...free].map(([id, f]) => ({ id, free: f })),
      hold: (node, k, r) => {
        held.set(k, { node, req: r });
        applyPlacement(free.get(node) as Capacity, r, [], -1);
      },
      release: (node, k) => {
        const h = held.get(k);
        if (!h) return;
        held.delete(k);
        applyPlacement(free.get(node) as Capacity, h.req, [], 1);
      },
      bundle: (g: Group, i: number, on: boolean) => void events.push(`${on ? 'reserve' : 'unreserve'} ${g.id}/${i} on ${g.spots?.[i]?.nodeId ?? '?'}`),
      ready: (g: Group) => void events.push(`ready ${g.id}`),
    });
    return { d, free, held, events };
  }
  const bundles = (n: number, cpus = 1) => Array.from({ length: n }, () => req(cpus));

  it('names: taken, get_if_exists, the same actor again, lookups, and a name freed when its actor dies', () => {
    const { d } = setup([{ id: 'a', cpus: 2 }]);
    const name = (actor: string, getIfExists = false) => d.answer('j1', 1, { op: 'name_actor', name: 'x', namespace: 'ns', get_if_exists: getIfExists, detached: false, actor_id: actor, handle: Buffer.from(actor).toString('base64') }, 'a');
    expect(name('a1')).toMatchObject({ ok: true, value: { created: true } });
    expect(name('a1')).toMatchObject({ ok: true, value: { created: true } });
    expect(name('a2')).toMatchObject({ ok: false, error: { type: 'ActorAlreadyExistsError' } });
    expect(name('a2', true)).toMatchObject({ ok: true, value: { created: false }, data: Buffer.from('a1').toString('base64') });
    expect(d.answer('j1', 2, { op: 'get_actor', name: 'x', namespace: 'ns' }, 'a')).toMatchObject({ ok: true, data: Buffer.from('a1').toString('base64') });
    // Names are the job's own.
    expect(d.answer('j2', 3, { op: 'get_actor', name: 'x', namespace: 'ns' }, 'a')).toMatchObject({ ok: false, error: { type: 'ValueError' } });
    d.actorGone('j1', 'a1');
    expect(d.answer('j1', 4, { op: 'get_actor', name: 'x', namespace: 'ns' }, 'a')).toMatchObject({ ok: false, error: { type: 'ValueError' } });
    expect(name('a2')).toMatchObject({ ok: true, value: { created: true } });
  });

  it("bounds what a job makes the head keep: handles' bytes, bundles of live groups (a removed group no longer counts)", () => {
    const { d } = setup([{ id: 'a', cpus: 2 }]);
    const handle = Buffer.alloc(60 * 1024).toString('base64');
    const named = Array.from({ length: 400 }, (_, i) => d.answer('j1', i, { op: 'name_actor', name: `n${i}`, namespace: 'ns', get_if_exists: false, detached: false, actor_id: `a${i}`, handle }, 'a'));
    const refused = named.findIndex((r) => !r.ok);
    expect(refused).toBeGreaterThan(100);
    expect(named[refused]).toMatchObject({ ok: false, error: { type: 'ValueError', message: expect.stringMatching(/MiB of handles/) } });
    // A dead actor's name gives its bytes back.
    d.actorGone('j1', 'a0');
    expect(d.answer('j1', 1, { op: 'name_actor', name: 'again', namespace: 'ns', get_if_exists: false, detached: false, actor_id: 'b1', handle }, 'a').ok).toBe(true);
    const big = (id: string, n: number) => d.answer('j1', 1, { op: 'pg_create', id, bundles: bundles(n, 0.001), strategy: 'PACK', name: '' }, 'a');
    expect(big('g1', 6000).ok).toBe(true);
    expect(big('g2', 5000)).toMatchObject({ ok: false, error: { type: 'ValueError' } });
    d.answer('j1', 2, { op: 'pg_remove', id: 'g1' }, 'a');
    expect(big('g2', 5000).ok).toBe(true);
  });

  it('places a group all at once or waits; removing it gives everything back; a lost node re-places it', () => {
    const { d, free, held, events } = setup([
      { id: 'a', cpus: 2 },
      { id: 'b', cpus: 2 },
    ]);
    d.answer('j1', 1, { op: 'pg_create', id: 'pg1', bundles: bundles(2), strategy: 'STRICT_SPREAD', name: 'g' }, 'a');
    expect(events).toEqual(['reserve pg1/0 on a', 'reserve pg1/1 on b', 'ready pg1']);
    expect(d.bundleNode('j1', 'pg1', 1)).toBe('b');
    // Three CPUs on one node: never here, so it waits (as Ray's pending groups do), holding nothing.
    d.answer('j1', 2, { op: 'pg_create', id: 'pg2', bundles: bundles(3), strategy: 'STRICT_PACK', name: '' }, 'a');
    expect(d.bundleNode('j1', 'pg2', 0)).toBeNull();
    expect(held.size).toBe(2);
    // The node's agent holds bundle 0 itself now: the head's placeholder for it goes.
    d.bundleHeld('a', 'j1', 'pg1', 0);
    expect(held.has(heldKey('j1', 'pg1', 0))).toBe(false);
    // Node b goes (and what the head held there with it): the group waits for two nodes again.
    free.delete('b');
    for (const [k, h] of held) if (h.node === 'b') held.delete(k);
    d.nodeLost('b');
    expect(events.slice(3)).toEqual(['unreserve pg1/0 on a']);
    expect(d.bundleNode('j1', 'pg1', 0)).toBeNull();
    free.set('c', capacityFromTotals(totals));
    d.place();
    expect(events.slice(4)).toEqual(['reserve pg1/0 on a', 'reserve pg1/1 on c', 'ready pg1']);
    d.answer('j1', 3, { op: 'pg_remove', id: 'pg1' }, 'a');
    expect(d.hasGroup('j1', 'pg1')).toBe(false);
    expect(held.size).toBe(0);
    for (const f of free.values()) expect(f.cpus).toBe(toUnits(2));
    d.forgetJob('j1');
    expect(d.hasGroup('j1', 'pg2')).toBe(false);
  });
});
