/**
 * Capture times stored with the log, and where `tail` and `since` start a read: the head's log
 * store on real files in a temporary directory, in process.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { followLogs, splitByTime, type FollowItem } from '../src/head/logFollower.js';
import { startOffset } from '../src/head/logStart.js';
import { LogStore } from '../src/head/logStore.js';
import { LogTimes } from '../src/head/logTimes.js';
import { tempDir } from './helpers/cluster.js';

type Piece = Extract<FollowItem, { kind: 'piece' }>;

async function pieces(store: LogStore, jobId: string, from: Record<string, number> = {}): Promise<Piece[]> {
  const out: Piece[] = [];
  const items = followLogs(store, jobId, {
    follow: false,
    signal: new AbortController().signal,
    taskCount: 1,
    from,
    timestamps: true,
    keepaliveMs: 1000,
    status: () => 'SUCCEEDED',
    onJobChange: () => () => undefined,
  });
  for await (const item of items) if (item.kind === 'piece') out.push(item);
  return out;
}

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A log written as the agent sends it: each chunk with its capture time. */
function storeWith(chunks: [string, number][]): LogStore {
  const store = new LogStore(tempDir('raysub-logtimes-'));
  let at = 0;
  for (const [text, time] of chunks) {
    const data = Buffer.from(text);
    at = store.appendAt('j', 0, 1, at, data, 'stdout', time);
  }
  return store;
}

describe('capture times', () => {
  it('each piece carries the capture time of its chunk, and survives a restart of the store', async () => {
    const store = storeWith([
      ['a\nb\n', T0],
      ['c\n', T0 + 1500],
      ['d', T0 + 3000],
      ['d\n', T0 + 4000],
    ]);
    const got = await pieces(store, 'j');
    expect(got.map((p) => [p.text, p.time])).toEqual([
      ['a\nb\n', T0],
      ['c\n', T0 + 1500],
      ['d', T0 + 3000],
      ['d\n', T0 + 4000],
    ]);
    // Read again by a new store (a restarted head): the times come from the side file.
    const again = new LogStore(store.logPath('j', 0).replace(/\/j\/0\.log$/, ''));
    expect((await pieces(again, 'j')).map((p) => p.time)).toEqual([T0, T0 + 1500, T0 + 3000, T0 + 4000]);
    // Resuming inside a chunk keeps that chunk's time.
    expect((await pieces(again, 'j', { '0': 2 })).map((p) => [p.text, p.time])[0]).toEqual(['b\n', T0]);
  });

  it('a resent chunk adds no mark; times never go backwards nor past the head clock', () => {
    const store = storeWith([
      ['a\n', T0 + 5000],
      ['b\n', T0], // an agent clock that went back
    ]);
    store.appendAt('j', 0, 1, 0, Buffer.from('a\n'), 'stdout', T0 + 9000); // resent: already held
    store.appendAt('j', 0, 1, 4, Buffer.from('c\n'), 'stdout', Date.now() + 3_600_000);
    const marks = store.timeMarks('j', 0);
    expect(marks[0]).toEqual({ offset: 0, time: T0 + 5000 });
    expect(marks.some((m) => m.offset === 2)).toBe(false); // same time as the mark before: none written
    expect(marks.at(-1)?.offset).toBe(4);
    expect(marks.at(-1)?.time).toBeLessThanOrEqual(Date.now());
  });

  it('a mark repeated by a cut-back write is read as the later one', () => {
    const dir = tempDir('raysub-logtimes-');
    const file = `${dir}/0.times`;
    fs.writeFileSync(file, `0 ${T0}\n5 ${T0 + 1}\n5 ${T0 + 2}\n9 ${T0 + 3}\nnot a mark\n`);
    expect(new LogTimes().marks(file)).toEqual([
      { offset: 0, time: T0 },
      { offset: 5, time: T0 + 2 },
      { offset: 9, time: T0 + 3 },
    ]);
  });

  it.each([
    ['within one mark', [{ offset: 0, time: 1 }], 0, 'abc', [['abc', 1]]],
    ['across a mark', [{ offset: 0, time: 1 }, { offset: 2, time: 2 }], 0, 'abcd', [['ab', 1], ['cd', 2]]],
    ['starting past the first mark', [{ offset: 0, time: 1 }, { offset: 2, time: 2 }], 3, 'de', [['de', 2]]],
    ['before any mark (a log from before times were kept)', [{ offset: 4, time: 7 }], 0, 'abcdef', [['abcd', undefined], ['ef', 7]]],
    ['a mark inside a character moves to its end', [{ offset: 0, time: 1 }, { offset: 2, time: 2 }], 0, 'aé b', [['aé', 1], [' b', 2]]],
  ] as const)('splitByTime: %s', (_name, marks, at, text, expected) => {
    const parts = splitByTime(marks, at, Buffer.from(text)).map((p) => [p.data.toString(), p.time]);
    expect(parts).toEqual(expected);
  });
});

describe('where tail and since start', () => {
  const lines = [
    ['one\n', T0],
    ['two\nthree\n', T0 + 1000],
    ['four\nfi', T0 + 2000],
    ['ve\n', T0 + 3000],
  ] as [string, number][];
  const all = lines.map(([t]) => t).join('');
  const rest = (store: LogStore, opts: { tail?: number; since?: number }): string => all.slice(startOffset(store, 'j', 0, opts));

  it.each([
    [{}, all],
    [{ tail: 0 }, ''],
    [{ tail: 1 }, 'five\n'],
    [{ tail: 2 }, 'four\nfive\n'],
    [{ tail: 5 }, all],
    [{ tail: 500 }, all],
    [{ since: T0 }, all],
    [{ since: T0 + 1 }, 'two\nthree\nfour\nfive\n'],
    [{ since: T0 + 2000 }, 'four\nfive\n'],
    // "five" began before this time: a line is whole or not at all.
    [{ since: T0 + 2500 }, ''],
    [{ since: T0 + 9000 }, ''],
    [{ since: T0 + 1, tail: 1 }, 'five\n'],
    [{ since: T0 + 2000, tail: 3 }, 'four\nfive\n'],
  ])('%j', (opts, expected) => {
    expect(rest(storeWith(lines), opts)).toBe(expected);
  });

  it('a last line without its newline yet counts as a line', () => {
    const store = storeWith([['a\nb\nc', T0]]);
    expect('a\nb\nc'.slice(startOffset(store, 'j', 0, { tail: 2 }))).toBe('b\nc');
  });

  it('a task with no log starts at 0', () => {
    const store = new LogStore(tempDir('raysub-logtimes-'));
    expect(startOffset(store, 'j', 3, { tail: 2, since: T0 })).toBe(0);
  });

  it('tail finds lines across 64 KiB blocks', () => {
    const long = Array.from({ length: 30_000 }, (_, i) => `line ${i}\n`).join('');
    const store = storeWith([[long, T0]]);
    expect(long.slice(startOffset(store, 'j', 0, { tail: 3 }))).toBe('line 29997\nline 29998\nline 29999\n');
    expect(startOffset(store, 'j', 0, { tail: 30_000 })).toBe(0);
  });
});
