/**
 * The clustering example (jobs/clustering) end to end: its runtime env asks for scikit-learn, which
 * the agent installs with this machine's own pip configuration. Skipped, saying why, where that
 * configuration cannot provide scikit-learn (no local index and no network).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, startHead, tempDir } from './helpers/cluster.js';

/** Installers fall through an unreachable public index at once instead of retrying for minutes. */
const FAST_PIP = { PIP_RETRIES: '0', PIP_DEFAULT_TIMEOUT: '5' };

function scikitLearnAvailable(): { ok: boolean; reason: string } {
  const res = spawnSync('python3', ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', tempDir('raysub-probe-'), 'scikit-learn'], {
    env: { ...process.env, ...FAST_PIP },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (res.status === 0) return { ok: true, reason: '' };
  const last = `${res.stderr ?? ''}`.trim().split('\n').pop() ?? String(res.error ?? 'no output');
  return { ok: false, reason: `this machine's pip configuration cannot provide scikit-learn (${last})` };
}

describe('jobs/clustering', () => {
  it('loads a CSV, trains k-means with scikit-learn from the runtime env, saves the model and predicts', { timeout: 900_000 }, async (ctx) => {
    const probe = scikitLearnAvailable();
    if (!probe.ok) {
      console.log(`skipping the clustering job test: ${probe.reason}`);
      ctx.skip(probe.reason);
    }
    const head = await startHead({ numCpus: 1, env: FAST_PIP });
    const job = path.join(repoRoot, 'jobs', 'clustering');
    const res = await runCli(
      ['job', 'submit', '--submission-id', 'clustering', '--working-dir', job, '--runtime-env', path.join(job, 'runtime_env.yaml'), '--', 'python3', 'cluster.py'],
      { env: head.env, timeoutMs: 840_000 },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/python \S+\/envs\/pip\/[0-9a-f]{32}\/bin\/python3?, scikit-learn \d/);
    expect(res.stdout).toContain('loaded 300 points from points.csv');
    expect(res.stdout).toContain('saved the model to model.joblib');
    const line = /^RESULT (.*)$/m.exec(res.stdout)?.[1];
    const result = JSON.parse(line ?? '{}') as { points: number; ari: number; predicted: number[] };
    expect(result.points).toBe(300);
    expect(result.ari).toBeGreaterThan(0.9);
    // The probe points lie near the three true centres (the last one near the first's).
    const [a, b, c, d] = result.predicted;
    expect(new Set([a, b, c]).size).toBe(3);
    expect(d).toBe(a);
  });
});
