/**
 * What a careless or hostile client or job can throw at the log endpoints and the log store, on an
 * in-process head (real SQLite file, real log files): each gets a clear answer with a stable code,
 * or is passed on harmlessly, and the head keeps serving.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogStore } from '../src/head/logStore.js';
import { call, inProcessHead } from './helpers/head.js';
import { tempDir } from './helpers/cluster.js';

async function raw(head: Awaited<ReturnType<typeof inProcessHead>>, method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: string }> {
  const res = await head.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${head.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: res.body };
}

const lines = (body: string): Record<string, unknown>[] =>
  body
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('hostile input to the log endpoints', () => {
  it('refuses malformed resume offsets with INVALID_REQUEST and serves what is sane', async () => {
    const head = await inProcessHead();
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'j', entrypoint_num_cpus: 0 })).status).toBe(200);
    head.logs.appendAt('j', 0, 1, 0, Buffer.from('hello\nworld\n'), 'stdout');
    const bad: [method: 'GET' | 'POST', url: string, body?: unknown][] = [
      ['GET', '/api/jobs/j/logs/stream?from=abc'],
      ['GET', '/api/jobs/j/logs/stream?from=0:-1'],
      ['GET', '/api/jobs/j/logs/stream?from=0:1e9'],
      ['GET', '/api/jobs/j/logs/stream?from=0:99999999999999999'],
      ['GET', `/api/jobs/j/logs/stream?from=${'0:1,'.repeat(3000)}`],
      ['GET', '/api/jobs/j/logs/stream?follow=maybe'],
      ['POST', '/api/jobs/j/logs/stream', { from: { '../0': 1 } }],
      ['POST', '/api/jobs/j/logs/stream', { from: { 0: -5 } }],
      ['POST', '/api/jobs/j/logs/stream', { from: { 0: 'x' } }],
      ['POST', '/api/jobs/j/logs/stream', { follow: 'yes' }],
      ['POST', '/api/jobs/j/logs/stream', '[1, 2'],
      ['GET', '/api/jobs/j/logs/stream?tail=-1'],
      ['GET', '/api/jobs/j/logs/stream?tail=1e99'],
      ['GET', '/api/jobs/j/logs/stream?since=yesterday'],
      ['GET', '/api/jobs/j/logs/stream?task=1'], // the job has one task
      ['GET', '/api/jobs/j/logs/stream?task=0.5'],
      ['POST', '/api/jobs/j/logs/stream', { tail: 'all' }],
      ['POST', '/api/jobs/j/logs/stream', { task: 99999999 }],
      ['POST', '/api/jobs/j/logs/stream', { since: -1 }],
      ['POST', '/api/jobs/j/logs/stream', { timestamps: 'yes' }],
    ];
    for (const [method, url, body] of bad) {
      const res = await raw(head, method, url, body);
      expect({ url: url.slice(0, 60), status: res.status, code: (JSON.parse(res.body) as { error?: { code?: string } }).error?.code }).toMatchObject({
        status: 400,
        code: expect.stringMatching(/^INVALID_(REQUEST|JSON)$/) as unknown,
      });
    }
    // Unknown jobs, ids that try to leave the log directory: 404, never a file outside it.
    for (const url of ['/api/jobs/nope/logs', '/api/jobs/nope/logs/stream', '/api/jobs/..%2F..%2Fetc/logs', '/api/jobs/..%2F..%2Fetc/logs/stream']) {
      const res = await raw(head, 'GET', url);
      expect({ url, status: res.status }).toEqual({ url, status: 404 });
    }
    // Offsets past the end, or for tasks the job does not have, are harmless.
    const past = lines((await raw(head, 'GET', '/api/jobs/j/logs/stream?from=0:1000,7:3')).body);
    expect(past).toEqual([{ end: true, status: 'PENDING' }]);
    const resumed = lines((await raw(head, 'POST', '/api/jobs/j/logs/stream', { from: { 0: 6 } })).body);
    expect(resumed).toEqual([{ task: 0, stream: 'stdout', data: 'world\n', offset: 12 }, { end: true, status: 'PENDING' }]);
    expect((await raw(head, 'GET', '/api/version')).status).toBe(200);
  });

  it("passes a job's invalid UTF-8 and control characters on as data, in valid JSON, through every endpoint", async () => {
    const head = await inProcessHead();
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'weird', entrypoint_num_cpus: 0 })).status).toBe(200);
    const nasty = Buffer.concat([Buffer.from('\u001b[2J\u001b]0;title\u0007 "quoted" \\ back\u0000slash\n'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x0a]), Buffer.from('\u2028\u2029 end\n')]);
    head.logs.appendAt('weird', 0, 1, 0, nasty, 'stderr');
    const stream = lines((await raw(head, 'GET', '/api/jobs/weird/logs/stream')).body);
    const data = stream.filter((l) => 'data' in l).map((l) => l.data as string).join('');
    expect(data).toBe(nasty.toString('utf8'));
    const ray = JSON.parse((await raw(head, 'GET', '/api/jobs/weird/logs')).body) as { logs: string };
    expect(ray.logs).toBe(`Running entrypoint for job weird: true\n${nasty.toString('utf8')}`);
    const ours = JSON.parse((await raw(head, 'GET', '/api/jobs/weird/logs?view=raysub')).body) as { logs: string };
    expect(ours.logs).toBe(nasty.toString('utf8'));
  });

  it("answers Ray's GET with the end of a log that is one long line, not nothing", async () => {
    const head = await inProcessHead({ logs: { keepaliveMs: 1000, maxJobBytes: 0, droppedTailBytes: 1024, rayResponseMaxBytes: 4096 } });
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'oneline', entrypoint_num_cpus: 0 })).status).toBe(200);
    head.logs.appendAt('oneline', 0, 1, 0, Buffer.alloc(100_000, 'x'), 'stdout');
    const ray = JSON.parse((await raw(head, 'GET', '/api/jobs/oneline/logs')).body) as { logs: string };
    const [marker, rest] = ray.logs.split('\n');
    expect(marker).toMatch(/^\[raysub\] this log has 100000 bytes; this answer holds only the last 4096 bytes/);
    expect(rest).toBe('x'.repeat(4096));
  });
});

describe('hostile input to the log store', () => {
  it('never builds a path outside its directory from a job id', () => {
    const dir = tempDir();
    const store = new LogStore(path.join(dir, 'logs'));
    for (const id of ['..', '.', '../outside', 'a/b', '', 'x\u0000y']) {
      expect(() => store.appendAt(id, 0, 1, 0, Buffer.from('no\n'), 'stdout'), id).toThrow(/job id/);
      expect(() => store.removeJob(id), id).toThrow(/job id/);
    }
    expect(fs.readdirSync(dir)).toEqual(['logs']);
    expect(fs.readdirSync(path.join(dir, 'logs'))).toEqual([]);
  });
});
