/**
 * What an in-job task costs on the job socket, counted rather than timed (so it holds on a busy
 * machine): a function by value is sent to each worker once, not with every task; the Python
 * library reads frames through a buffer (several per read, any split) and checks each against the
 * contract; a task run one at a time costs the driver one frame in and at most two out.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, startHead } from './helpers/cluster.js';

const PYTHON_LIB = path.join(repoRoot, 'src', 'worker', 'python');
const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'injob-wire');

function checks(stdout: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const line of stdout.split('\n')) {
    if (!/^\{.*"check": .*\}$/.test(line)) continue;
    const { check, ...rest } = JSON.parse(line) as Record<string, unknown>;
    out.set(String(check), rest);
  }
  return out;
}

describe('in-job wire costs', () => {
  it('the Python reader takes frames joined in one read and split at any byte, and refuses one the contract does not allow', () => {
    const out = execFileSync(
      'python3',
      [
        '-c',
        `import json, socket, struct, threading
from raysub._conn import FrameReader
def frame(h, p=b""):
    hb = json.dumps(h).encode()
    return struct.pack(">II", len(hb), len(p)) + hb + p
res = lambda i, n: frame({"t": "resolved", "items": [{"id": "o%d" % i, "state": "value", "len": n}]}, bytes([i % 251]) * n)
# Small frames, one large payload (read past the buffer), then small ones again.
sizes = [0, 1, 5, 3000, FrameReader.CHUNK * 3 + 7, 2, 0, 9]
data = b"".join(res(i, n) for i, n in enumerate(sizes))
out = {}
for split in ("joined", "bytewise", "odd"):
    a, b = socket.socketpair()
    def feed():
        at = 0
        while at < len(data):
            # One byte at a time round the small frames; large steps through the large payload.
            step = len(data) if split == "joined" else 7919 if split == "odd" else 1 if at < 4000 or at > len(data) - 4000 else 4096
            a.sendall(data[at:at + step])
            at += step
        a.close()
    t = threading.Thread(target=feed)
    t.start()
    r = FrameReader(b)
    got = []
    for i, n in enumerate(sizes):
        h, p = r.read()
        got.append(h["items"][0]["id"] == "o%d" % i and p == bytes([i % 251]) * n and isinstance(p, bytes))
    try:
        r.read()
        got.append("read past the end")
    except ConnectionError:
        pass
    t.join()
    out[split] = [all(got), r.frames, r.bytes == len(data)]
a, b = socket.socketpair()
a.sendall(frame({"t": "execute", "task": {"id": "../x"}}))
try:
    FrameReader(b).read()
    out["bad"] = None
except ConnectionError as e:
    out["bad"] = str(e)
print(json.dumps(out))`,
      ],
      { env: { ...process.env, PYTHONPATH: PYTHON_LIB }, encoding: 'utf8' },
    );
    const got = JSON.parse(out) as Record<string, unknown>;
    for (const split of ['joined', 'bytewise', 'odd']) expect(got[split], split).toEqual([true, 8, true]);
    expect(got.bad).toMatch(/does not understand \(message\.task lacks kind\)/);
  });

  it('a function by value goes to each worker once; a worker started after one died gets it again; one task at a time costs the driver one frame in', async () => {
    const head = await startHead({ numCpus: 2 });
    const res = await runCli(['job', 'submit', '-q', '--working-dir', FIXTURE, '--entrypoint-num-cpus', '0', '--', 'python3', 'main.py'], { env: head.env, timeoutMs: 180_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^done$/m);
    const c = checks(res.stdout);

    const once = c.get('function_once') as { workers: number; tasks: number; most_read: number; blob: number };
    expect(once.tasks).toBe(30);
    // Sent with every task, a worker running 15 of the 30 would have read 15 copies of the blob.
    // Sent once, each reads one copy and a few hundred bytes per task.
    expect(once.most_read).toBeGreaterThan(once.blob);
    expect(once.most_read).toBeLessThan(2 * once.blob);

    const restarted = c.get('restarted_worker') as { died: number; value: number; new_worker: boolean };
    expect(restarted.died).toBeGreaterThanOrEqual(once.workers);
    expect(restarted.new_worker).toBe(true);
    expect(restarted.value).toBe(100);

    const sync = c.get('sync_frames') as { frames_in: number; frames_out: number; writes: number };
    expect(sync.frames_in).toBe(1);
    expect(sync.frames_out).toBeLessThanOrEqual(2);
    expect(sync.writes).toBeLessThanOrEqual(2);

    // Each result is read by the thread waiting on it, each call by the actor's main thread waiting
    // for it: not by a reader thread that hands it over (all of them, before).
    const own = c.get('own_reads') as { driver_waiter: number; driver_background: number; actor_waiter: number; actor_background: number };
    expect(own.driver_waiter + own.driver_background).toBeGreaterThanOrEqual(50);
    expect(own.driver_waiter, JSON.stringify(own)).toBeGreaterThan(own.driver_background);
    expect(own.actor_waiter + own.actor_background).toBeGreaterThanOrEqual(49);
    expect(own.actor_waiter, JSON.stringify(own)).toBeGreaterThan(own.actor_background);

    // [submission, its release] right after the loop above, then after 0.3 s idle: one frame each.
    expect((c.get('flusher') as { sent: number[] }).sent).toEqual([1, 1, 1, 1]);

    // Raised by the first task to end, not after the three of 3 s each queued behind it on one CPU.
    const early = c.get('early_error') as { raised: string | null; seconds: number };
    expect(early.raised).toMatch(/early/);
    expect(early.seconds).toBeLessThan(6);

    expect(c.get('interrupted')).toEqual({ interrupted: true, then: 1, next: 5 });
  }, 240_000);
});
