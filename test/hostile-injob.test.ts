/**
 * A hostile job against its agent's job socket: frames written by hand (test/fixtures/hostile),
 * not by raysub's library. Ids that would name paths, frames larger than the job may send,
 * malformed frames and floods each get a clear error; nothing reaches the host, the agent's
 * memory stays flat, and the agent keeps serving the next job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, startAgent, startHead, tempDir } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'hostile');

function checks(stdout: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const m of stdout.matchAll(/\{"check".*\}$/gm)) {
    const rec = JSON.parse(m[0]) as Record<string, unknown>;
    out.set(String(rec.check), rec);
  }
  return out;
}

async function cluster(): Promise<{ head: Awaited<ReturnType<typeof startHead>>; agent: Awaited<ReturnType<typeof startAgent>> }> {
  const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200'] });
  const agent = await startAgent(head, { name: 'a', numCpus: 2 });
  return { head, agent };
}

describe('hostile in-job traffic', () => {
  it('refuses object ids that are not ids (traversal, separators, NUL, empty, too long) and ids used twice', async () => {
    const { head, agent } = await cluster();
    const target = tempDir('raysub-hostile-target-');
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'ids.py', target], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const codes = checks(res.stdout).get('ids')?.codes as Record<string, string>;
    expect(Object.keys(codes)).toHaveLength(8 * 4 + 1);
    for (const [what, code] of Object.entries(codes)) {
      if (what === 'duplicate') expect(code).toBe('DUPLICATE_ID');
      else expect(code, what).toBe('INVALID_MESSAGE');
    }
    // Nothing was written where the ids pointed, nor anywhere in the agent's work dir but its own store.
    expect(fs.readdirSync(target)).toEqual([]);
    expect(fs.existsSync(path.join(agent.workDir, 'put'))).toBe(false);
    const nodes = await head.client.nodes();
    expect(nodes[0]?.state).toBe('ALIVE');
  }, 150_000);
});
