/** The in-job API's building blocks on their own: socket framing, the node ledger, the relay to the head. */
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader, type Frame } from '../src/agent/jobapi/frames.js';
import { NodeLedger } from '../src/agent/jobapi/ledger.js';
import { objectPath } from '../src/agent/jobapi/objects.js';
import { Relay } from '../src/agent/jobapi/relay.js';
import { clientMessageSchema } from '../src/shared/protocol/index.js';
import { UNLIMITED_TASK_SLOTS } from '../src/shared/resources.js';

const req = (cpus: number, gpus = 0) => ({ cpus, gpus, memory: 0, custom: {} });

describe('job socket frames', () => {
  it('reassembles frames split and joined at any byte', () => {
    const bytes = Buffer.concat([...encodeFrame({ t: 'a', n: 1 }, Buffer.from('payload-one')), ...encodeFrame({ t: 'b' }), ...encodeFrame({ t: 'c' }, [Buffer.from('x'), Buffer.from('yz')])]);
    for (const step of [1, 3, 7, bytes.length]) {
      const got: Frame[] = [];
      const r = new FrameReader((f) => got.push(f));
      for (let i = 0; i < bytes.length; i += step) r.push(bytes.subarray(i, i + step));
      expect(got.map((f) => [f.header, f.payload.toString()])).toEqual([
        [{ t: 'a', n: 1 }, 'payload-one'],
        [{ t: 'b' }, ''],
        [{ t: 'c' }, 'xyz'],
      ]);
    }
  });

  it('refuses a frame that announces more than it may carry', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(0xffffffff, 0);
    expect(() => new FrameReader(() => undefined).push(bad)).toThrow(/too large/);
  });
});

describe('node ledger', () => {
  it('places what fits, lends a blocked holder\'s CPUs and reports only in-job usage', () => {
    const l = new NodeLedger({ num_cpus: 2, num_gpus: 2, memory: 1000, resources: {} });
    const driver = l.take(req(1), null, []);
    const t1 = l.tryTake(req(1, 1), 'job');
    expect(t1?.gpuIds).toEqual([0]);
    expect(l.tryTake(req(1), 'job')).toBeNull();
    expect(l.injobUsage()).toEqual({ cpus: 10_000, memory: 0, gpus: [10_000, 0], custom: {}, tasks: 1 });
    if (!t1) return;
    l.lend(t1);
    expect(l.imbalance()).toBeNull();
    const child = l.tryTake(req(1), 'job');
    expect(child).not.toBeNull();
    l.reclaim(t1); // oversubscribed until the child ends
    expect(l.free.cpus).toBe(-10_000);
    if (child) l.release(child);
    l.release(t1);
    l.release(driver);
    expect(l.free.cpus).toBe(20_000);
    expect(l.imbalance()).toBeNull();
    expect(l.couldEverFit(req(3))).toBe(false);
  });

  it('never holds more tasks than the node has task slots, 0-CPU ones included', () => {
    const l = new NodeLedger({ num_cpus: 2, num_gpus: 1, memory: 1000, resources: {}, task_slots: 2 });
    const job = l.take(req(0), null, []);
    const a = l.tryTake(req(0), 'job');
    expect(a).not.toBeNull();
    expect(l.tryTake(req(0), 'job')).toBeNull();
    expect(l.tryTake(req(0, 1), 'job', [0])).toBeNull();
    expect(l.injobUsage().tasks).toBe(1);
    if (a) l.release(a);
    l.release(job);
    expect(l.free.tasks).toBe(2);
    expect(l.imbalance()).toBeNull();
  });

  it("gives back everything a job's in-job work holds when the job ends, whatever each holding's state", () => {
    const l = new NodeLedger({ num_cpus: 4, num_gpus: 1, memory: 1000, resources: { tpu: 2 } });
    const driver = l.take(req(1), null, []);
    const a = l.tryTake({ cpus: 1, gpus: 1, memory: 100, custom: { tpu: 1 } }, 'a');
    const lent = l.tryTake(req(1), 'a');
    if (lent) l.lend(lent);
    const b = l.tryTake(req(1), 'b');
    expect(a && lent && b).toBeTruthy();
    expect(l.releaseOwner('a')).toBe(2);
    expect(l.heldBy('a')).toBe(0);
    expect(l.imbalance()).toBeNull();
    if (a) l.release(a); // a path that releases again after the job's end changes nothing
    expect(l.imbalance()).toBeNull();
    expect(l.free).toEqual({ cpus: 20_000, memory: 1000, gpus: [10_000], custom: { tpu: 20_000 }, tasks: UNLIMITED_TASK_SLOTS - 2 });
    if (b) l.release(b);
    l.release(driver);
    expect(l.free).toEqual(l.totals);
  });
});

describe('relay to the head', () => {
  it('sends again what a failed report carried, before anything newer', () => {
    const r = new Relay();
    const base = { address: null, usage: { cpus: 0, memory: 0, gpus: [], custom: {} }, jobs: [], counts: {} };
    const t = (id: string) => ({ job_id: 'j', id });
    r.done.push(t('t1'));
    expect(r.take(base).done).toEqual([t('t1')]);
    r.failed();
    r.done.push(t('t2'));
    expect(r.take(base).done).toEqual([t('t1'), t('t2')]);
    r.sent();
    expect(r.hasWork()).toBe(false);
    expect(r.take(base).done).toEqual([]);
  });
});

describe('object ids', () => {
  it('name a file directly inside the store, or are refused', () => {
    expect(objectPath('/w/objects', 'a1b2c3_-Z')).toBe('/w/objects/a1b2c3_-Z');
    for (const bad of ['../x', 'a/b', '..', '.', 'x\u0000y', '', 'a'.repeat(65), '/etc/passwd', 'a\\b']) {
      expect(() => objectPath('/w/objects', bad), JSON.stringify(bad)).toThrow(/object id/);
      expect(clientMessageSchema.safeParse({ t: 'put', id: bad, len: 0 }).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
