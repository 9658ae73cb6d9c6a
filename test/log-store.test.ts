/**
 * The head's log store and follower in process, on real files in a temporary directory: where a
 * reader resumes, the per-job cap and the kept end of dropped output, what an agent holds past the
 * cap while the head is away, a full disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { completeUtf8Length, followLogs, type FollowItem } from '../src/head/logFollower.js';
import { LogBuffer } from '../src/agent/logBuffer.js';
import { LogStore } from '../src/head/logStore.js';
import { RaysubError } from '../src/shared/errors.js';
import type { JobStatus, LogStream } from '../src/shared/protocol/index.js';
import { tempDir } from './helpers/cluster.js';

type Piece = Extract<FollowItem, { kind: 'piece' }>;

async function readAll(store: LogStore, jobId: string, opts: { taskCount?: number; from?: Record<string, number>; status?: JobStatus } = {}): Promise<Piece[]> {
  const out: Piece[] = [];
  const items = followLogs(store, jobId, {
    follow: false,
    signal: new AbortController().signal,
    taskCount: opts.taskCount ?? 1,
    from: opts.from,
    keepaliveMs: 1000,
    status: () => opts.status ?? 'SUCCEEDED',
    onJobChange: () => () => undefined,
  });
  for await (const item of items) if (item.kind === 'piece') out.push(item);
  return out;
}

const text = (pieces: Piece[]): string => pieces.map((p) => p.text).join('');

describe('completeUtf8Length', () => {
  it.each([
    ['ascii', Buffer.from('abc'), 3],
    ['whole 2-byte char', Buffer.from('aé'), 3],
    ['cut 2-byte char', Buffer.from('aé').subarray(0, 2), 1],
    ['cut 3-byte char after 1 byte', Buffer.from('a✓').subarray(0, 2), 1],
    ['cut 3-byte char after 2 bytes', Buffer.from('a✓').subarray(0, 3), 1],
    ['whole 4-byte char', Buffer.from('a😀'), 5],
    ['cut 4-byte char after 3 bytes', Buffer.from('a😀').subarray(0, 4), 1],
    ['lone continuation bytes are left to the decoder', Buffer.from([0x61, 0x80, 0x80, 0x80, 0x80]), 5],
    ['empty', Buffer.alloc(0), 0],
  ])('%s', (_name, buf, want) => {
    expect(completeUtf8Length(buf)).toBe(want);
  });
});

describe('following a log', () => {
  it('gives the same text however output was split, and resumes exactly at any piece boundary', async () => {
    const store = new LogStore(tempDir());
    // Multi-byte characters cut across chunks, streams switching mid-line, and more than one read's worth.
    const line = 'naïve café ✓ 😀 ';
    const full: { stream: LogStream; data: Buffer }[] = [];
    for (let i = 0; i < 6000; i++) full.push({ stream: i % 7 === 3 ? 'stderr' : 'stdout', data: Buffer.from(`${i} ${line}\n`) });
    const bytes = Buffer.concat(full.map((c) => c.data));
    let at = 0;
    for (const [i, c] of full.entries()) {
      // Split every chunk at an odd place (inside a character, most of the time).
      const cut = (i * 7) % c.data.length;
      for (const part of [c.data.subarray(0, cut), c.data.subarray(cut)]) {
        at = store.appendAt('j', 0, 1, at, part, c.stream);
      }
    }
    expect(at).toBe(bytes.length);
    const pieces = await readAll(store, 'j');
    expect(text(pieces)).toBe(bytes.toString('utf8'));
    expect(pieces.filter((p) => p.stream === 'stderr').map((p) => p.text).join('')).toBe(
      full.filter((c) => c.stream === 'stderr').map((c) => c.data.toString()).join(''),
    );
    for (const k of [1, 2, 17, Math.floor(pieces.length / 2), pieces.length - 1]) {
      const head = pieces.slice(0, k);
      const resumed = await readAll(store, 'j', { from: { 0: (head[head.length - 1] as Piece).offset } });
      expect(text(head) + text(resumed)).toBe(bytes.toString('utf8'));
    }
  });

  it('holds back a character whose last bytes have not arrived, unless the job has ended', async () => {
    const store = new LogStore(tempDir());
    const check = Buffer.from('ok ✓');
    store.appendAt('j', 0, 1, 0, check.subarray(0, check.length - 1), 'stdout');
    expect(text(await readAll(store, 'j', { status: 'RUNNING' }))).toBe('ok ');
    expect(text(await readAll(store, 'j', { status: 'FAILED' }))).toBe('ok \ufffd');
    store.appendAt('j', 0, 1, check.length - 1, check.subarray(check.length - 1), 'stdout');
    expect(text(await readAll(store, 'j', { status: 'RUNNING' }))).toBe('ok ✓');
  });

  it('starts each task of an array job at its own offset', async () => {
    const store = new LogStore(tempDir());
    store.appendAt('arr', 0, 1, 0, Buffer.from('zero-a\nzero-b\n'), 'stdout');
    store.appendAt('arr', 1, 1, 0, Buffer.from('one-a\none-b\n'), 'stdout');
    const resumed = await readAll(store, 'arr', { taskCount: 2, from: { 0: 7, 1: 6 } });
    expect(resumed.map((p) => [p.task, p.text])).toEqual([
      [0, 'zero-b\n'],
      [1, 'one-b\n'],
    ]);
  });
});

describe('the per-job log cap', () => {
  const lines = (from: number, to: number): Buffer => Buffer.from(Array.from({ length: to - from }, (_, i) => `line ${from + i}\n`).join(''));

  it('keeps the beginning, says so once, acknowledges what it drops, and adds the end when the attempt ends', async () => {
    const dir = tempDir();
    let store = new LogStore(dir, { maxJobBytes: 1000, tailBytes: 120 });
    let at = 0;
    for (let i = 0; i < 500; i += 10) {
      const chunk = lines(i, i + 10);
      expect(store.appendAt('cap', 0, 1, at, chunk, 'stdout')).toBe(at + chunk.length);
      at += chunk.length;
    }
    // The head restarts: a resent chunk it had dropped counts once.
    store = new LogStore(dir, { maxJobBytes: 1000, tailBytes: 120 });
    const last = lines(490, 500);
    expect(store.appendAt('cap', 0, 1, at - last.length, last, 'stdout')).toBe(at);
    store.endAttempt('cap', 0);
    const log = text(await readAll(store, 'cap'));
    expect(log.startsWith(lines(0, 10).toString())).toBe(true);
    expect(log.match(/log cap reached/g)).toHaveLength(1);
    const dropped = at - 1000;
    expect(log).toContain(`[raysub] ${dropped} bytes of output were dropped`);
    // The kept end starts at a line and ends with the last line printed.
    const tail = log.slice(log.indexOf('of them follow\n') + 'of them follow\n'.length);
    expect(tail.endsWith('line 499\n')).toBe(true);
    expect(tail.split('\n')[0]).toMatch(/^line \d+$/);
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(120);
    expect(fs.existsSync(path.join(dir, 'cap', '0.dropped'))).toBe(false);
  });

  it('is shared by the tasks of an array job, and each task says so in its own log', async () => {
    const store = new LogStore(tempDir(), { maxJobBytes: 300, tailBytes: 64 });
    store.appendAt('arr', 0, 1, 0, lines(0, 30), 'stdout');
    store.appendAt('arr', 1, 1, 0, lines(100, 130), 'stderr');
    // Task 1 used up the job's cap: task 0's next output is dropped too.
    store.appendAt('arr', 0, 1, lines(0, 30).length, lines(30, 40), 'stdout');
    for (const task of [0, 1]) store.endAttempt('arr', task);
    const pieces = await readAll(store, 'arr', { taskCount: 2 });
    const byTask = [0, 1].map((t) => text(pieces.filter((p) => p.task === t)));
    expect(byTask[0]).toContain('log cap reached');
    expect(byTask[1]).toContain('log cap reached');
    expect(byTask[0]?.startsWith('line 0\n')).toBe(true);
    expect(byTask[0]).toContain('line 39');
    expect(byTask[1]).toContain('line 129');
  });

  it('never caps with a cap of 0', async () => {
    const store = new LogStore(tempDir(), { maxJobBytes: 0, tailBytes: 64 });
    store.appendAt('j', 0, 1, 0, lines(0, 5000), 'stdout');
    expect(text(await readAll(store, 'j'))).toBe(lines(0, 5000).toString());
  });
});

describe('a full disk', () => {
  it.skipIf(!fs.existsSync('/dev/full'))('refuses the chunk with DISK_FULL, keeps nothing partial, and takes the resend once there is room', async () => {
    const dir = tempDir();
    const store = new LogStore(dir);
    const first = Buffer.from('first line\n');
    expect(store.appendAt('full', 0, 1, 0, first, 'stdout')).toBe(first.length);
    // Writes to /dev/full fail with ENOSPC, as on a full file system.
    const file = path.join(dir, 'full', '0.log');
    const kept = fs.readFileSync(file);
    fs.rmSync(file);
    fs.symlinkSync('/dev/full', file);
    const fresh = new LogStore(dir);
    let err: unknown;
    try {
      fresh.appendAt('full', 0, 1, 0, Buffer.from('second line\n'), 'stderr');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RaysubError);
    expect(err).toMatchObject({ code: 'DISK_FULL', httpStatus: 507, retryable: true });
    // raysub's own lines are best effort: a full disk loses the line, never the caller's state change.
    expect(() => fresh.appendSystem('full', 0, '[raysub] a note')).not.toThrow();
    // Room again: the resend (from what was acknowledged) lands once.
    fs.rmSync(file);
    fs.writeFileSync(file, kept);
    const again = new LogStore(dir);
    const second = Buffer.from('second line\n');
    expect(again.appendAt('full', 0, 1, first.length, second, 'stderr')).toBe(first.length + second.length);
    expect(again.appendAt('full', 0, 1, first.length, second, 'stderr')).toBe(first.length + second.length);
    const pieces = await readAll(again, 'full');
    expect(pieces.map((p) => [p.stream, p.text])).toEqual([
      ['stdout', 'first line\n'],
      ['stderr', 'second line\n'],
    ]);
  });
});

describe("an agent's output past the cap while the head is away", () => {
  const lines = (from: number, to: number): Buffer => Buffer.from(Array.from({ length: to - from }, (_, i) => `line ${from + i}\n`).join(''));

  /** Deliver everything `buf` holds as the agent's reports would, in reports of at most `budget` bytes. */
  function deliver(buf: LogBuffer, store: LogStore, budget: number): void {
    for (let round = 0; round < 10_000 && buf.unacked > 0; round++) {
      let held = buf.acked;
      for (const p of buf.read(budget)) {
        let at = p.offset;
        if (p.skipped) {
          held = store.skipAt('away', 0, 1, at, p.skipped);
          if (held < at + p.skipped) break;
          at += p.skipped;
        }
        held = store.appendAt('away', 0, 1, at, p.data, p.stream);
      }
      buf.ack(held);
    }
    expect(buf.unacked).toBe(0);
  }

  it.each([
    ['one large write', [60_000], 64 * 1024],
    ['many small writes', Array.from({ length: 3000 }, () => 20), 64 * 1024],
    ['writes that straddle the cap', [900, 250, 5000, 7, 40_000], 1000],
    ['a tail of nothing', [5000, 5000], 1 << 20],
  ])('keeps the cap and the last bytes, holds no more, and ends the log as a head that saw everything would (%s)', async (name, sizes, budget) => {
    const tailBytes = name === 'a tail of nothing' ? 0 : 120;
    const cap = { maxJobBytes: 1000, tailBytes };
    const dir = tempDir();
    const buf = new LogBuffer(path.join(dir, 'spool'), 4096, { keepBytes: cap.maxJobBytes, tailBytes });
    const reference = new LogStore(path.join(dir, 'ref'), cap);
    const store = new LogStore(path.join(dir, 'head'), cap);
    let n = 0;
    let at = 0;
    for (const size of sizes) {
      let chunk = Buffer.alloc(0);
      while (chunk.length < size) {
        chunk = Buffer.concat([chunk, lines(n, n + 1)]);
        n += 1;
      }
      buf.append('stdout', chunk);
      reference.appendAt('away', 0, 1, at, chunk, 'stdout');
      at += chunk.length;
    }
    // The head was away for all of it: the agent held the first 1000 bytes and the last 120 only.
    expect(fs.existsSync(path.join(dir, 'spool'))).toBe(false);
    const pieces = buf.read(Number.MAX_SAFE_INTEGER);
    expect(pieces.reduce((sum, p) => sum + p.data.length, 0)).toBeLessThanOrEqual(1000 + tailBytes);
    expect(pieces.reduce((sum, p) => sum + p.skipped + p.data.length, 0)).toBe(at);
    deliver(buf, store, budget);
    reference.endAttempt('away', 0);
    store.endAttempt('away', 0);
    expect(text(await readAll(store, 'away'))).toBe(text(await readAll(reference, 'away')));
    expect(text(await readAll(store, 'away'))).toContain(`[raysub] ${at - 1000} bytes of output were dropped`);
  });

  it('records a skip once when it is sent again, and refuses one that leaves a gap', () => {
    const store = new LogStore(tempDir(), { maxJobBytes: 100, tailBytes: 50 });
    expect(store.appendAt('away', 0, 1, 0, lines(0, 20), 'stdout')).toBe(lines(0, 20).length);
    const end = lines(0, 20).length;
    // A skip starting past what the head holds is a gap: refused, the agent resends from here.
    expect(store.skipAt('away', 0, 1, end + 10, 500)).toBe(end);
    expect(store.skipAt('away', 0, 1, end, 500)).toBe(end + 500);
    expect(store.skipAt('away', 0, 1, end, 500)).toBe(end + 500);
    expect(store.appendAt('away', 0, 1, end + 500, lines(20, 22), 'stdout')).toBe(end + 500 + lines(20, 22).length);
  });

  it('never splices bytes from before a skip into the kept end (an agent that kept less than the head would)', async () => {
    const store = new LogStore(tempDir(), { maxJobBytes: 100, tailBytes: 200 });
    const before = lines(0, 40);
    store.appendAt('away', 0, 1, 0, before, 'stdout'); // the head drops most of it itself
    store.skipAt('away', 0, 1, before.length, 1000);
    const after = lines(1000, 1003);
    store.appendAt('away', 0, 1, before.length + 1000, after, 'stdout');
    store.endAttempt('away', 0);
    const log = text(await readAll(store, 'away'));
    const dropped = before.length - 100 + 1000 + after.length;
    const kept = log.slice(log.indexOf(`[raysub] ${dropped} bytes of output were dropped`));
    // Only bytes that came after the skip, from a line's start: never the head's own older ones.
    expect(kept).toMatch(/of them follow\n(line 100[0-2]\n)+$/);
  });
});
