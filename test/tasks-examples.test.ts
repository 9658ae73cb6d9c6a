/**
 * The in-job example jobs in jobs/ run as users would submit them: on a head with its embedded
 * agent, through the CLI, with the command line their README line gives.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, startHead } from './helpers/cluster.js';

const submit = (env: Record<string, string>, job: string, more: string[] = []) =>
  runCli(['job', 'submit', '-q', '--working-dir', path.join(repoRoot, 'jobs', job), '--entrypoint-num-cpus', '0', ...more, '--', 'python3', 'main.py'], { env, timeoutMs: 120_000 });

describe('in-job example jobs', () => {
  it('fibonacci, weather-actors and pipeline run and print their results', async () => {
    const head = await startHead({ numCpus: 2 });

    const fib = await submit(head.env, 'fibonacci');
    expect(fib.code, fib.stderr).toBe(0);
    expect(fib.stdout).toMatch(/^8 sequences of 40000 Fibonacci numbers \(last one mod 1e9\+7: \d+\)$/m);
    expect(fib.stdout).toMatch(/^serial: +\d+\.\d\ds$/m);
    expect(fib.stdout).toMatch(/^parallel: +\d+\.\d\ds \(\d+\.\dx faster\)$/m);

    const weather = await submit(head.env, 'weather-actors');
    expect(weather.code, weather.stderr).toBe(0);
    expect(weather.stdout).toMatch(/^Seville +365 days, mean high \d+\.\d C/m);
    expect(weather.stdout).toMatch(/^Bergen +365 days/m);
    expect(weather.stdout).toMatch(/^Bergen +0 days above 30 C$/m);
    expect(weather.stdout).toMatch(/^warmer station: Seville \(\d+ more hot days\)$/m);

    // With no network at all in its sandbox: the job reaches its agent through its socket only.
    const pipeline = await submit(head.env, 'pipeline', ['--runtime-env-json', '{"sandbox": {"network": "none"}}']);
    expect(pipeline.code, pipeline.stderr).toBe(0);
    expect(pipeline.stdout).toMatch(/^trained on 100000 rows: y = 3\.0\d\d x \+ [12]\.9\d\d|^trained on 100000 rows: y = 3\.0\d\d x \+ 2\.0\d\d/m);
    const mse = Number(/held-out data: (\d+\.\d+)/.exec(pipeline.stdout)?.[1]);
    expect(mse).toBeGreaterThan(0.8);
    expect(mse).toBeLessThan(1.2);
  }, 180_000);
});
