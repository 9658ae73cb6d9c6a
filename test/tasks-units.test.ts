/** The in-job API's building blocks on their own: socket framing, the node ledger, the relay to the head. */
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameError, FrameReader } from '../src/agent/injob/frames.js';
import { NodeLedger } from '../src/agent/injob/ledger.js';
import { objectPath } from '../src/agent/injob/objects.js';
import { Relay } from '../src/agent/injob/relay.js';
import { clientMessageSchema } from '../src/shared/protocol/index.js';
import { UNLIMITED_TASK_SLOTS } from '../src/shared/resources.js';

const req = (cpus: number, gpus = 0) => ({ cpus, gpus, memory: 0, custom: {} });

/** A reader that buffers every payload, or streams those its `stream` says, recording what it saw. */
function reader(opts: { maxPayload?: number; stream?: (msg: unknown) => boolean } = {}) {
  const got: [unknown, string, boolean][] = [];
  const streamed: string[] = [];
  const r = new FrameReader<unknown>({
    admit: (_h, p) => {
      if (p > (opts.maxPayload ?? Infinity)) throw new FrameError('LIMIT_EXCEEDED', 'frame too large');
    },
    route: (header) => {
      if (!opts.stream?.(header)) return { msg: header, stream: null };
      let text = '';
      return { msg: header, stream: { write: (c) => void (text += c.toString()), end: () => void streamed.push(text), abort: () => void streamed.push(`aborted:${text}`) } };
    },
    frame: (f) => void got.push([f.msg, f.payload.toString(), f.streamed]),
  });
  return { r, got, streamed };
}

describe('job socket frames', () => {
  it('reassembles frames split and joined at any byte', () => {
    const bytes = Buffer.concat([...encodeFrame({ t: 'a', n: 1 }, Buffer.from('payload-one')), ...encodeFrame({ t: 'b' }), ...encodeFrame({ t: 'c' }, [Buffer.from('x'), Buffer.from('yz')])]);
    for (const step of [1, 3, 7, bytes.length]) {
      const { r, got } = reader();
      for (let i = 0; i < bytes.length; i += step) r.push(bytes.subarray(i, i + step));
      expect(got).toEqual([
        [{ t: 'a', n: 1 }, 'payload-one', false],
        [{ t: 'b' }, '', false],
        [{ t: 'c' }, 'xyz', false],
      ]);
    }
  });

  it('writes a small frame as one buffer and a large one with its payload referenced, not copied; both read back whole or split', () => {
    const small = encodeFrame({ t: 'ü✓', s: 'é' }, [Buffer.from('ab'), Buffer.from('c')]);
    expect(small).toHaveLength(1);
    const large = Buffer.alloc(16 * 1024 + 1, 7);
    const big = encodeFrame({ t: 'big' }, large);
    expect(big).toHaveLength(2);
    expect(big[1]).toBe(large);
    const bytes = Buffer.concat([...small, ...big, ...encodeFrame({ t: 'none' })]);
    for (const step of [1, 5, 8 + 30, bytes.length]) {
      const { r, got } = reader();
      for (let i = 0; i < bytes.length; i += step) r.push(bytes.subarray(i, i + step));
      expect(got).toEqual([
        [{ t: 'ü✓', s: 'é' }, 'abc', false],
        [{ t: 'big' }, large.toString(), false],
        [{ t: 'none' }, '', false],
      ]);
    }
  });

  it('streams the payloads its handler routes to a stream, never holding them', () => {
    const bytes = Buffer.concat([...encodeFrame({ t: 'big' }, Buffer.from('0123456789')), ...encodeFrame({ t: 'small' }, Buffer.from('ab'))]);
    const { r, got, streamed } = reader({ stream: (m) => (m as { t: string }).t === 'big' });
    for (let i = 0; i < bytes.length; i += 4) r.push(bytes.subarray(i, i + 4));
    expect(streamed).toEqual(['0123456789']);
    expect(got).toEqual([
      [{ t: 'big' }, '', true],
      [{ t: 'small' }, 'ab', false],
    ]);
    // A connection that goes mid-payload abandons what was streamed.
    const half = reader({ stream: () => true });
    half.r.push(Buffer.concat(encodeFrame({ t: 'big' }, Buffer.from('0123456789'))).subarray(0, 8 + 11 + 5));
    half.r.close();
    expect(half.streamed).toEqual(['aborted:01234']);
  });

  it('refuses a frame by its announced size, and a header that is not JSON or empty', () => {
    const big = Buffer.alloc(8);
    big.writeUInt32BE(2, 0);
    big.writeUInt32BE(0xffffffff, 4);
    expect(() => reader({ maxPayload: 1024 }).r.push(big)).toThrow(/too large/);
    const junk = Buffer.concat([Buffer.from([0, 0, 0, 3, 0, 0, 0, 0]), Buffer.from('{x}')]);
    expect(() => reader().r.push(junk)).toThrow(/not JSON/);
    expect(() => reader().r.push(Buffer.alloc(8))).toThrow(/needs a header/);
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
  const base = { address: null, usage: { cpus: 0, memory: 0, gpus: [], custom: {} }, jobs: [], counts: {} };
  const t = (id: string) => ({ job_id: 'j', id });

  it('sends again what a failed report carried, alone, then what came since', () => {
    const r = new Relay();
    let sent = 0;
    r.push('done', t('t1'), () => sent++);
    expect(r.take(base).done).toEqual([t('t1')]);
    r.unsent();
    r.push('done', t('t2'), () => sent++);
    expect(r.take(base).done).toEqual([t('t1')]);
    expect(sent).toBe(0);
    r.sent();
    expect(sent).toBe(1);
    expect(r.take(base).done).toEqual([t('t2')]);
    r.sent();
    expect(sent).toBe(2);
    expect(r.hasWork()).toBe(false);
    expect(r.pendingBytes).toBe(0);
    expect(r.take(base).done).toEqual([]);
  });

  it('carries at most its byte budget in one report (one item at least), the rest in the next', () => {
    const r = new Relay();
    for (let i = 0; i < 5; i++) r.push('logs', { job_id: 'j', data: 'x'.repeat(1000) });
    expect(r.take(base, 2300).logs).toHaveLength(2);
    r.sent();
    expect(r.hasWork()).toBe(true);
    expect(r.take(base, 10).logs).toHaveLength(1);
    r.sent();
    expect(r.take(base).logs).toHaveLength(2);
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
