/**
 * A 600 MiB log (larger than the longest string Node can hold) served by a real head: Ray's GET
 * answers with the end of it, raysub's stream sends all of it, and the head's memory stays far
 * below the log's size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { startHead } from './helpers/cluster.js';

const MIB = 1024 * 1024;

function peakRssBytes(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}

describe('a huge log', () => {
  it.skipIf(!fs.existsSync('/proc/self/status'))('is served piece by piece: the end of it to Ray, all of it to raysub, in bounded memory', async () => {
    const first = await startHead({ numCpus: 1 });
    await first.client.submitJob({ entrypoint: 'echo first line', submission_id: 'huge' });
    expect((await first.client.waitForJob('huge')).status).toBe('SUCCEEDED');
    await first.stop();
    // 600 MiB of numbered lines, written straight into the job's log while the head is down.
    const file = path.join(first.dataDir, 'logs', 'huge', '0.log');
    const fd = fs.openSync(file, 'a');
    const lineLen = 64;
    const perChunk = MIB / lineLen;
    for (let c = 0; c < 600; c++) {
      const chunk = Buffer.alloc(MIB, 'x');
      for (let i = 0; i < perChunk; i++) {
        const label = `${String(c * perChunk + i).padStart(10, '0')} `;
        chunk.write(label, i * lineLen);
        chunk[i * lineLen + lineLen - 1] = 0x0a;
      }
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(600 * MIB);

    const head = await startHead({ dataDir: first.dataDir, localAgent: false });
    const auth = { authorization: `Bearer ${head.token}` };
    const before = peakRssBytes(head.pid);

    // Ray's answer: valid JSON, at most 64 MiB of text, the end of the log after a marker line.
    const ray = await request(`${head.url}/api/jobs/huge/logs`, { headers: auth });
    expect(ray.statusCode).toBe(200);
    const body = await ray.body.text();
    const logs = (JSON.parse(body) as { logs: string }).logs;
    const [marker, firstKept] = logs.split('\n', 2);
    expect(marker).toMatch(new RegExp(`^\\[raysub\\] this log has ${size} bytes; this answer holds only the last ${64 * MIB} bytes`));
    expect(firstKept).toMatch(/^\d{10} x+$/);
    const lastLine = `${String(600 * perChunk - 1).padStart(10, '0')} ${'x'.repeat(lineLen - 12)}\n`;
    expect(logs.endsWith(lastLine)).toBe(true);
    expect(logs.length - marker!.length - 1).toBeLessThanOrEqual(64 * MIB);

    // raysub's stream: every byte, counted as it passes (not held).
    const stream = await request(`${head.url}/api/jobs/huge/logs/stream`, { headers: auth });
    expect(stream.statusCode).toBe(200);
    let streamed = 0;
    let tail = '';
    for await (const chunk of stream.body) {
      streamed += (chunk as Buffer).length;
      tail = (tail + (chunk as Buffer).toString('latin1')).slice(-200);
    }
    expect(streamed).toBeGreaterThan(size);
    expect(tail.trimEnd().split('\n').pop()).toBe('{"end":true,"status":"SUCCEEDED"}');

    const peak = peakRssBytes(head.pid);
    console.log(`head peak RSS: ${(before / MIB).toFixed(0)} MiB before, ${(peak / MIB).toFixed(0)} MiB after serving a ${(size / MIB).toFixed(0)} MiB log twice`);
    expect(peak).toBeLessThan(400 * MIB);
    fs.rmSync(file, { force: true });
  });
});
