/**
 * Soak and chaos: a real head (with its embedded agent) and two agents on 127.0.0.1 run a seeded
 * random mix of jobs in phases while, in each phase, an agent is SIGKILLed and restarted, the head
 * is SIGKILLed and restarted, or a second agent tries to join under a live node's name. After each
 * phase the cluster must be at rest with every invariant holding (test/soak/checks.ts), and
 * retention (set to seconds here, minutes in the long run) must have removed what it promises to.
 *
 * This file is the short form that runs with the suite (about three minutes). `npm run soak`
 * runs the same for 30 minutes (or `--duration`, `--seed`) with larger jobs, and prints the
 * figures: RAYSUB_SOAK_DURATION_S, RAYSUB_SOAK_SEED, RAYSUB_SOAK_SCALE=long and
 * RAYSUB_SOAK_REPORT (a JSON file for the summary) are how it tells this file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { repoRoot, tempDir, waitFor } from './helpers/cluster.js';
import { checkIdle, checkProcessLogs, checkRetention, type PackageUse } from './soak/checks.js';
import { HEAD_NODE, SoakCluster, headAnswers } from './soak/cluster.js';
import { Figures } from './soak/figures.js';
import { runJob } from './soak/jobs.js';
import { JobMix, rng, type Kind } from './soak/mix.js';

const DURATION_S = Number(process.env.RAYSUB_SOAK_DURATION_S ?? 120);
const SEED = Number(process.env.RAYSUB_SOAK_SEED ?? 1);
const LONG = process.env.RAYSUB_SOAK_SCALE === 'long';
const REPORT = process.env.RAYSUB_SOAK_REPORT;

const SCALE = LONG
  ? { phaseS: 100, jobsPerPhase: 10, mix: { maxArray: 2000, manyFiles: 20_000, bigBytes: 32 << 20, loudLines: 200_000 }, retention: { jobTtlS: 180, maxFinishedJobs: 60, packageTtlS: 120 } }
  : { phaseS: 45, jobsPerPhase: 7, mix: { maxArray: 300, manyFiles: 3000, bigBytes: 8 << 20, loudLines: 30_000 }, retention: { jobTtlS: 40, maxFinishedJobs: 25, packageTtlS: 30 } };
const LEASE_MS = 15_000;
type Chaos = 'agent-kill' | 'head-kill' | 'duplicate-agent';

it(`holds every invariant through ${DURATION_S}s of mixed jobs, killed agents, a killed head and a duplicate agent (seed ${SEED})`, { timeout: (DURATION_S + 900) * 1000 }, async () => {
  const rand = rng(SEED);
  const scratch = tempDir('raysub-soak-wd-');
  const mix = new JobMix(rand, { ...SCALE.mix, scratch, driverDir: path.join(repoRoot, 'test', 'fixtures', 'bookkeeping') });
  const c = await SoakCluster.start({ retention: SCALE.retention, agents: ['soak-a', 'soak-b'], cpusPerNode: 2 });
  const figures = new Figures(c, LEASE_MS);
  figures.start();
  const packages = new Map<string, PackageUse>();
  const startedAt = Date.now();
  const violations: string[] = [];
  // Every kind early on (seeded order), then the weighted random mix; every chaos in the first three phases.
  const kinds: Kind[] = ['plain', 'array', 'retry', 'timeout', 'stop', 'quiet', 'driver-exit', 'runaway', 'big-package', 'many-files', 'loud'].sort(() => rand() - 0.5) as Kind[];
  const chaosOrder: Chaos[] = (['agent-kill', 'head-kill', 'duplicate-agent'] as Chaos[]).sort(() => rand() - 0.5);
  const chaosDone: string[] = [];
  let reported = 0;
  try {
    for (let phase = 0; phase < chaosOrder.length || Date.now() - startedAt < DURATION_S * 1000; phase++) {
      const phaseStart = Date.now();
      const jobs = Array.from({ length: SCALE.jobsPerPhase }, () => mix.next(kinds.shift()));
      const submitWindow = SCALE.phaseS * 600;
      const runs = jobs.map(async (job) => {
        await new Promise((r) => setTimeout(r, Math.floor(rand() * submitWindow)));
        figures.jobs.submitted++;
        return runJob(c, job, packages, SCALE.phaseS * 1000 + 600_000);
      });
      const chaos = chaosOrder[phase] ?? (['agent-kill', 'agent-kill', 'head-kill', 'duplicate-agent'] as Chaos[])[Math.floor(rand() * 4)];
      const chaosAt = Math.floor(rand() * submitWindow);
      const chaosRun = (async () => {
        await new Promise((r) => setTimeout(r, chaosAt));
        if (chaos === 'agent-kill') {
          const names = [...c.agents.keys()];
          const name = names[Math.floor(rand() * names.length)] as string;
          await c.killAgent(name, Math.floor(rand() * LEASE_MS * 1.5));
        } else if (chaos === 'head-kill') {
          await c.killHead(Math.floor(rand() * 5000));
        } else {
          const before = (await c.client.nodes()).filter((n) => n.state !== 'ALIVE').map((n) => n.node_name);
          const dup = await c.duplicateAgent(rand() < 0.5 ? HEAD_NODE : 'soak-a');
          if (dup.code === 0 || dup.code === null || !/NODE_NAME_TAKEN|is held by a live agent/.test(dup.output)) violations.push(`the duplicate agent was not refused clearly: exit ${dup.code}: ${dup.output.slice(-500)}`);
          const after = (await c.client.nodes()).filter((n) => n.state !== 'ALIVE').map((n) => n.node_name);
          if (after.length > before.length) violations.push(`nodes went LOST when a duplicate tried to join: ${after.join(',')}`);
        }
        chaosDone.push(`${Math.round((Date.now() - startedAt) / 1000)}s ${chaos}`);
      })();
      const results = await Promise.all(runs);
      await chaosRun;
      await headAnswers(c);
      for (const r of results) {
        violations.push(...r.violations);
        figures.jobs.finished++;
        figures.jobs.tasks += r.job.parallel;
        const s = r.details ? `${r.details.status}${r.details.raysub.error_type ? `/${r.details.raysub.error_type}` : ''}` : r.unacknowledged ? 'NOT_SUBMITTED (head down)' : 'UNKNOWN';
        figures.jobs.byStatus[s] = (figures.jobs.byStatus[s] ?? 0) + 1;
      }
      // At rest: every node back, ALIVE and wholly free, within a lease and a bit.
      let idle: string[] = [];
      try {
        await waitFor(async () => (idle = await checkIdle(c)).length === 0, { timeoutMs: LEASE_MS * 3, intervalMs: 500, what: 'the cluster to be at rest' });
      } catch {
        violations.push(...idle.map((v) => `phase ${phase}: ${v}`));
      }
      violations.push(...(await checkRetention(c, packages, 20_000)).map((v) => `phase ${phase}: ${v}`));
      violations.push(...checkProcessLogs(c).map((v) => `phase ${phase}: ${v}`));
      violations.push(...figures.lostWhileAlive.splice(0).map((v) => `phase ${phase}: ${v}`));
      console.log(`soak phase ${phase}: ${jobs.length} jobs in ${Math.round((Date.now() - phaseStart) / 1000)}s, chaos ${chaos}; ${violations.length} violations so far`);
      for (const v of violations.slice(reported)) console.log(`  violation: ${v.slice(0, 1000)}`);
      reported = violations.length;
      // Go on after a violation (the next phases may show more), but not without end.
      if (violations.length > 100) break;
    }
  } finally {
    figures.stop();
    const summary = { seed: SEED, scale: LONG ? 'long' : 'short', chaos: chaosDone, ...figures.summary(startedAt), violations };
    console.log(`soak summary: ${JSON.stringify(summary, null, 1)}`);
    if (REPORT) fs.writeFileSync(REPORT, JSON.stringify({ summary, samples: figures.samples, events: c.events }, null, 1));
    await c.close();
  }
  expect(violations).toEqual([]);
  // Each kind of chaos happened at least once.
  expect(new Set(chaosDone.map((s) => s.split(' ')[1]))).toEqual(new Set(['agent-kill', 'head-kill', 'duplicate-agent']));
});
