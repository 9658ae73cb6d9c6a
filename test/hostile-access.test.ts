/**
 * Hostile and careless access: what the data dir lets other accounts read, secrets a job tries to
 * expand, credentials used where they do not belong, and requests that never end.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli, spawnCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';

/** Every path under `root` (not following links), with its permission bits. */
function modes(root: string, skip: (rel: string) => boolean): { rel: string; mode: number; dir: boolean }[] {
  const out: { rel: string; mode: number; dir: boolean }[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (skip(rel)) continue;
      const st = fs.lstatSync(p);
      out.push({ rel, mode: st.mode & 0o777, dir: e.isDirectory() });
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

describe('the data dir', () => {
  it('keeps every file 0600 and every directory 0700, and narrows what an older version left readable', async () => {
    let head = await startHead({ numCpus: 1 });
    const res = await runCli(['job', 'submit', '--submission-id', 'perm-1', '--working-dir', path.join(import.meta.dirname, '..', 'jobs', 'hello-python'), '--', 'python3', 'main.py'], { env: head.env });
    expect(res.code, res.stderr).toBe(0);
    // The embedded agent's work dir holds task directories bound into sandboxes: it is the
    // sandbox's business (and unreachable through the 0700 root).
    const skip = (rel: string): boolean => rel === 'agent' || rel.startsWith(`agent${path.sep}`);
    const check = (): void => {
      expect(fs.statSync(head.dataDir).mode & 0o777).toBe(0o700);
      const all = modes(head.dataDir, skip);
      for (const name of ['raysub.db', 'raysub.db-wal', 'raysub.db-shm', 'token', 'head.json', 'packages', 'logs', path.join('logs', 'perm-1')]) {
        expect(all.map((e) => e.rel)).toContain(name);
      }
      const loose = all.filter((e) => e.mode !== (e.dir ? 0o700 : 0o600));
      expect(loose).toEqual([]);
    };
    check();

    // What an older version left behind: readable by everyone. A restart narrows it.
    await head.stop();
    fs.chmodSync(head.dataDir, 0o755);
    for (const e of modes(head.dataDir, skip)) fs.chmodSync(path.join(head.dataDir, e.rel), e.dir ? 0o755 : 0o644);
    head = await head.restart();
    check();
  });
});

describe("the head's HTTP server", () => {
  /** Open `n` connections from `from` to the head, each starting a request whose body never ends (a byte a second). */
  async function neverEnding(head: { url: string; token: string }, n: number, from: string): Promise<net.Socket[]> {
    const { port } = new URL(head.url);
    const sockets: net.Socket[] = [];
    onTestFinished(() => sockets.forEach((s) => s.destroy()));
    await Promise.all(
      Array.from({ length: n }, () =>
        new Promise<void>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: Number(port), localAddress: from });
          sockets.push(s);
          s.on('error', () => undefined);
          s.once('close', () => resolve());
          s.once('connect', () => {
            s.write(`POST /api/jobs/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${head.token}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`);
            const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(' ')), 1000);
            s.once('close', () => clearInterval(t));
            resolve();
          });
        }),
      ),
    );
    return sockets;
  }

  it('keeps answering normal requests while 1,100 never-ending request bodies hold a head with a 1,024 file limit', async (ctx) => {
    const prlimit = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => fs.existsSync(p));
    if (!prlimit) {
      console.log('skipped: prlimit is not installed (util-linux)');
      return ctx.skip();
    }
    const head = await startHead({ localAgent: false, prefix: [prlimit, '--nofile=1024:1024', '--'] });
    expect(fs.readFileSync(`/proc/${head.pid}/limits`, 'utf8')).toMatch(/Max open files\s+1024\s+1024/);
    const started = Date.now();
    // The attacker, from another loopback address.
    const sockets = await neverEnding(head, 1100, '127.0.0.2');
    const held = (): number => sockets.filter((s) => !s.destroyed && !s.closed).length;
    // One address holds at most its share (256 by default); the rest were closed at once.
    await waitFor(() => held() <= 256, { what: 'the head to close connections past the per-address cap' });
    const holding = held();
    expect(holding).toBeGreaterThan(200);
    // While the attack holds, every normal request from 127.0.0.1 is answered, promptly.
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      const [version, list] = await Promise.all([head.client.version(), head.client.listJobs({ limit: 5 })]);
      latencies.push(Date.now() - t0);
      expect(version.version).toBe('4');
      expect(list.jobs).toEqual([]);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(held()).toBe(holding);
    console.log(`attack held ${holding} connections; 40 normal requests answered, slowest pair in ${Math.max(...latencies)} ms`);
    expect(Math.max(...latencies)).toBeLessThan(5000);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(head.output()).toMatch(/refusing connections/);
  });

  it('closes a request whose body never ends after the request timeout, and one whose headers never end after the headers timeout', async () => {
    const head = await startHead({ localAgent: false, args: ['--http-request-timeout', '3', '--http-headers-timeout', '2'] });
    const started = Date.now();
    const bodies = await neverEnding(head, 3, '127.0.0.1');
    const { port } = new URL(head.url);
    const slow = net.connect({ host: '127.0.0.1', port: Number(port) });
    onTestFinished(() => {
      slow.destroy();
    });
    slow.on('error', () => undefined);
    slow.write('GET /api/version HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.write('X-Slow: 1\r\n'), 500);
    onTestFinished(() => clearInterval(drip));
    await waitFor(() => slow.closed || slow.destroyed, { timeoutMs: 15_000, what: 'the head to close a request whose headers never end' });
    await waitFor(() => bodies.every((s) => s.closed || s.destroyed), { timeoutMs: 15_000, what: 'the head to close requests whose bodies never end' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect((await head.client.version()).version).toBe('4');
  });
});

/** A raw call with `token`, answering status and JSON body. */
async function raw(url: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

const registration = (name: string, previous?: string) => ({
  node_name: name,
  hostname: 'attacker',
  pid: 1,
  version: '0.1.0',
  totals: { num_cpus: 64, num_gpus: 0, memory: 2 ** 36, resources: {} },
  sandbox: { mode: 'none', detail: 'none', cgroups: false },
  ...(previous ? { previous_node_id: previous } : {}),
});

describe('credentials', () => {
  it('keeps users off the agent endpoints, agents off the user API, and each agent to the nodes it registered', async () => {
    const head = await startHead({ numCpus: 1 });
    const dir = tempDir('raysub-tokens-');
    const mk = async (kind: string, name: string): Promise<string> => {
      const file = path.join(dir, name);
      const res = await runCli(['token', 'create', '--kind', kind, '--name', name, '--output', file], { env: head.env });
      expect(res.code, res.stderr).toBe(0);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      return fs.readFileSync(file, 'utf8').trim();
    };
    const user = await mk('user', 'alice');
    const agentA = await mk('agent', 'rack-a');
    const agentB = await mk('agent', 'rack-b');
    const local = (await head.client.nodes())[0];
    if (!local) throw new Error('no embedded agent');

    // A user token: the user API yes, the agent endpoints never.
    expect((await raw(head.url, 'GET', '/api/jobs/', user)).status).toBe(200);
    const userRegisters = await raw(head.url, 'POST', '/api/agents/register', user, registration('evil'));
    expect([userRegisters.status, userRegisters.body.error?.code]).toEqual([403, 'FORBIDDEN']);
    const userPolls = await raw(head.url, 'POST', `/api/agents/${local.node_id}/poll`, user, { known: [], wait_ms: 0 });
    expect([userPolls.status, userPolls.body.error?.code]).toEqual([403, 'FORBIDDEN']);
    // Nor token administration.
    expect((await raw(head.url, 'POST', '/api/tokens', user, { kind: 'user' })).status).toBe(403);

    // An agent token: its own node only, and no user API.
    const agentLists = await raw(head.url, 'GET', '/api/jobs/', agentA);
    expect([agentLists.status, agentLists.body.error?.code]).toEqual([403, 'FORBIDDEN']);
    const a = await raw(head.url, 'POST', '/api/agents/register', agentA, registration('rack-a-1'));
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    const nodeA = a.body.node_id as string;
    // A node name is a name, never a path: separators, dot-dot, NUL and the empty name are refused.
    for (const bad of ['../x', 'a/b', '..', '.hidden', 'x\u0000y', '', 'n'.repeat(129)]) {
      const refused = await raw(head.url, 'POST', '/api/agents/register', agentA, registration(bad));
      expect([refused.status, refused.body.error?.code], JSON.stringify(bad)).toEqual([400, 'INVALID_REQUEST']);
      expect(refused.body.error?.message).toMatch(/node name is 1-128/);
    }
    // Another credential can neither take its name nor read its assignments (also once the node's
    // own credential has been checked, and is remembered)...
    expect((await raw(head.url, 'POST', `/api/agents/${nodeA}/poll`, agentA, { known: [], wait_ms: 0 })).status).toBe(200);
    const taken = await raw(head.url, 'POST', '/api/agents/register', agentB, registration('rack-a-1'));
    expect([taken.status, taken.body.error?.code]).toEqual([409, 'NODE_NAME_TAKEN']);
    expect((await raw(head.url, 'POST', `/api/agents/${nodeA}/poll`, agentB, { known: [], wait_ms: 0 })).status).toBe(403);
    expect((await raw(head.url, 'POST', `/api/agents/${nodeA}/report`, agentB, { events: [], logs: [], running: [] })).status).toBe(403);
    expect((await raw(head.url, 'POST', `/api/agents/${nodeA}/leave`, agentB, {})).status).toBe(403);
    // ...nor the embedded agent's, nor its node.
    const stealLocal = await raw(head.url, 'POST', '/api/agents/register', agentB, registration(local.node_name));
    expect([stealLocal.status, stealLocal.body.error?.code]).toEqual([409, 'NODE_NAME_TAKEN']);
    expect(stealLocal.body.error?.message).toContain('held by a live agent');
    expect((await raw(head.url, 'POST', `/api/agents/${local.node_id}/poll`, agentA, { known: [], wait_ms: 0 })).status).toBe(403);
    // The same credential re-registering a live name must present the node it replaces.
    expect((await raw(head.url, 'POST', '/api/agents/register', agentA, registration('rack-a-1'))).status).toBe(409);
    const again = await raw(head.url, 'POST', '/api/agents/register', agentA, registration('rack-a-1', nodeA));
    expect(again.status).toBe(200);
    // Re-registration is rate-limited: no two agents can flap a name.
    let last = again.body.node_id as string;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await raw(head.url, 'POST', '/api/agents/register', agentA, registration('rack-a-1', last));
      statuses.push(r.status);
      if (r.status === 200) last = r.body.node_id as string;
    }
    expect(statuses).toContain(429);

    // Once an agent token exists, the admin token no longer registers agents.
    const admin = await raw(head.url, 'POST', '/api/agents/register', head.token, registration('legacy'));
    expect([admin.status, admin.body.error?.code]).toEqual([403, 'FORBIDDEN']);

    // Revoked: refused at once; listing shows no secret.
    expect((await runCli(['token', 'revoke', 'rack-b'], { env: head.env })).code).toBe(0);
    expect((await raw(head.url, 'POST', '/api/agents/register', agentB, registration('rack-b-1'))).status).toBe(403);
    const list = await runCli(['token', 'list', '--json'], { env: head.env });
    expect(list.code, list.stderr).toBe(0);
    for (const t of [user, agentA, agentB]) expect(list.stdout).not.toContain(t);
    expect((JSON.parse(list.stdout) as { tokens: { name: string; revoked_at: number | null }[] }).tokens.map((t) => [t.name, t.revoked_at !== null])).toEqual([
      ['alice', false],
      ['rack-a', false],
      ['rack-b', true],
    ]);
    // The embedded agent kept working throughout (its own credential); the fake node leaves first.
    expect((await raw(head.url, 'POST', `/api/agents/${last}/leave`, agentA, {})).status).toBe(200);
    const ok = await runCli(['job', 'submit', '--', 'true'], { env: head.env });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('never hands a job the agent token, expanded or inherited', async () => {
    const head = await startHead({ numCpus: 0 });
    await startAgent(head, { name: 'holder', numCpus: 1 });
    const code = 'import os; print("X=[" + os.environ.get("X", "") + "]"); print("VALUES=" + "\\n".join(os.environ.values()))';
    const res = await runCli(
      ['job', 'submit', '--runtime-env-json', JSON.stringify({ env_vars: { X: '${RAYSUB_TOKEN}${RAYSUB_TOKEN_FILE}' } }), '--', 'python3', '-c', code],
      { env: head.env },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('X=[]');
    expect(res.stdout).not.toContain(head.token);
  });
});

describe('node identity', () => {
  it("refuses a second agent started with the embedded agent's name while a job runs on, and gives a default-named one a name of its own", async () => {
    const head = await startHead({ numCpus: 1 });
    const local = (await head.client.nodes())[0];
    if (!local) throw new Error('no embedded agent');
    const dir = workingDir({ 'main.py': 'import time\nprint("started", flush=True)\ntime.sleep(6)\nprint("finished")\n' });
    const job = spawnCli(['job', 'submit', '--submission-id', 'survivor', '--working-dir', dir, '--', 'python3', 'main.py'], { env: head.env });
    await waitFor(() => job.output().includes('started'), { what: 'the job to start', timeoutMs: 60_000 });

    // The same name as the embedded agent: refused with a clear message, and it exits.
    const twin = spawnCli(['start', '--address', head.url, '--node-name', local.node_name, '--work-dir', tempDir(), '--num-cpus', '1'], { env: { RAYSUB_TOKEN: head.token } });
    const refused = await twin.result;
    expect(refused.code).toBe(65);
    expect(refused.stderr).toMatch(new RegExp(`node name "${local.node_name}" is held by a live agent .*--node-name`));

    // Without --node-name on the same machine: a name of its own, kept across restarts.
    const workDir = tempDir();
    const second = spawnCli(['start', '--address', head.url, '--work-dir', workDir, '--num-cpus', '1'], { env: { RAYSUB_TOKEN: head.token } });
    const named = await waitFor(async () => (await head.client.nodes()).find((n) => n.state === 'ALIVE' && n.node_id !== local.node_id), { what: 'the second agent to register', timeoutMs: 120_000 });
    expect(named.node_name).toMatch(new RegExp(`^${local.node_name}-[0-9a-f]{4}$`));
    // Stopped once it has started (it has recorded its name by then).
    await waitFor(() => second.output().includes(`raysub agent ${named.node_name} connected`), { what: 'the second agent to say it is connected' });
    await second.stop();
    const again = spawnCli(['start', '--address', head.url, '--work-dir', workDir, '--num-cpus', '1'], { env: { RAYSUB_TOKEN: head.token } });
    await waitFor(async () => (await head.client.nodes()).some((n) => n.state === 'ALIVE' && n.node_name === named.node_name && n.node_id !== named.node_id), { what: 'the second agent to come back', timeoutMs: 120_000 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${again.output()}\n${JSON.stringify(fs.readdirSync(workDir))}`);
    });
    await again.stop();

    const res = await job.result;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('finished');
    expect((await head.client.getJob('survivor')).status).toBe('SUCCEEDED');
    // The embedded agent was never replaced: no LOST node, the same node id throughout.
    const nodes = await head.client.nodes();
    expect(nodes.find((n) => n.node_id === local.node_id)?.state).toBe('ALIVE');
    expect(nodes.filter((n) => n.node_name === local.node_name && n.state === 'LOST')).toEqual([]);
  });
});
