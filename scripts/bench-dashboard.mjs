#!/usr/bin/env node
// Dashboard benchmark: the jobs page with 100,000 finished jobs in the head's database.
//  1. A real head with its local agent runs a handful of real jobs (successes, a failure, an
//     array job, a retried job, a stopped one, with labels); it is stopped, and its SQLite file is
//     filled up to JOBS finished jobs by copying those rows (jobs, tasks, attempts; the triggers
//     keep the counts and labels as the head's own writes do), newest last.
//  2. The head starts again on that data dir (keeping every finished job). Chromium (Debian's, driven by playwright-core) logs
//     in with `raysub dashboard --url` and opens /jobs RUNS times at 1280x800: the time from the
//     start of navigation to the table showing its first 50 rows and "of 100,000".
//  3. The head's API answers behind that page and its filters, timed from Node.
// Usage: npm run bench:dashboard [-- JOBS RUNS]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import { RaysubClient } from '../dist/client/index.js';
import { cli, machine, percentile, rssMiB, startHead } from './lib.mjs';

const JOBS = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 15);
const chromiumPath = ['chromium', 'chromium-browser']
  .flatMap((name) => (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, name)))
  .find((f) => fs.existsSync(f));
if (!chromiumPath) throw new Error('bench:dashboard needs chromium on PATH (apt-get install chromium)');
console.log(`machine: ${machine()}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`chromium: ${execFileSync(chromiumPath, ['--version'], { encoding: 'utf8' }).trim()}`);

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-dashboard-'));
// Keep every finished job (the head keeps 1,000 for 7 days by default).
const HEAD_ARGS = ['--num-cpus', '2', '--max-finished-jobs', '0', '--job-ttl', '0'];
const stats = (ms) => `median ${percentile(ms, 50).toFixed(0)} ms, p90 ${percentile(ms, 90).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`;

// --- 1. a database of JOBS finished jobs --------------------------------------------------------
{
  const head = await startHead(HEAD_ARGS, {}, dataDir);
  const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
  const submit = (id, entrypoint, metadata, raysub = {}) => client.submitJob({ submission_id: id, entrypoint, metadata, raysub });
  try {
    await submit('tpl-ok', 'echo trained', { team: 'vision', sweep: 'lr=0.1' });
    await submit('tpl-fail', 'python3 -c "import sys; sys.exit(3)"', { team: 'nlp' });
    await submit('tpl-array', 'python3 -c pass', { team: 'vision', kind: 'array' }, { parallel: 4 });
    await submit('tpl-retry', 'python3 -c "import sys; sys.exit(1)"', { team: 'speech' }, { max_retries: 1, retry_backoff_s: 0 });
    await submit('tpl-stop', 'sleep 60', { team: 'nlp', kind: 'long' });
    for (const id of ['tpl-ok', 'tpl-fail', 'tpl-array', 'tpl-retry']) await client.waitForJob(id);
    await client.stopJob('tpl-stop');
    await client.waitForJob('tpl-stop');
  } finally {
    await client.close();
    await head.stop({ keep: true });
  }
  const db = new Database(path.join(dataDir, 'raysub.db'));
  const columns = (table, skip) => db.prepare(`PRAGMA table_info(${table})`).all().map((c) => c.name).filter((c) => !skip.includes(c));
  const jobCols = columns('jobs', ['seq', 'id', 'metadata', 'created_at', 'start_time', 'end_time']);
  const taskCols = columns('tasks', ['job_id', 'started_at', 'ended_at']);
  const attemptCols = columns('attempts', ['job_id', 'assigned_at', 'started_at', 'ended_at']);
  const shifted = (c) => `CASE WHEN ${c} IS NULL THEN NULL ELSE ${c} + @shift END`;
  const copyJob = db.prepare(`
    INSERT INTO jobs (id, metadata, created_at, start_time, end_time, ${jobCols.join(', ')})
    SELECT @id, CASE WHEN json_extract(metadata, '$.job_submission_id') IS NULL THEN metadata ELSE json_set(metadata, '$.job_submission_id', @id) END,
      created_at + @shift, ${shifted('start_time')}, ${shifted('end_time')}, ${jobCols.join(', ')}
    FROM jobs WHERE id = @from`);
  const copyTasks = db.prepare(`
    INSERT INTO tasks (job_id, started_at, ended_at, ${taskCols.join(', ')})
    SELECT @id, ${shifted('started_at')}, ${shifted('ended_at')}, ${taskCols.join(', ')} FROM tasks WHERE job_id = @from`);
  const copyAttempts = db.prepare(`
    INSERT INTO attempts (job_id, assigned_at, started_at, ended_at, ${attemptCols.join(', ')})
    SELECT @id, assigned_at + @shift, ${shifted('started_at')}, ${shifted('ended_at')}, ${attemptCols.join(', ')} FROM attempts WHERE job_id = @from`);
  // Mostly successes, as on a real cluster.
  const mix = ['tpl-ok', 'tpl-ok', 'tpl-ok', 'tpl-ok', 'tpl-array', 'tpl-ok', 'tpl-fail', 'tpl-ok', 'tpl-retry', 'tpl-stop'];
  const created = new Map(db.prepare('SELECT id, created_at FROM jobs').all().map((r) => [r.id, r.created_at]));
  const newest = Math.max(...created.values());
  const t0 = Date.now();
  const count = JOBS - created.size;
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const from = mix[i % mix.length];
      // One job every 5 s up to the templates' time: 100,000 jobs span about six days.
      const row = { id: `job-${String(i).padStart(6, '0')}`, from, shift: newest - (count - i) * 5000 - created.get(from) };
      copyJob.run(row);
      copyTasks.run(row);
      copyAttempts.run(row);
    }
  })();
  const counts = db.prepare('SELECT status, n FROM job_status_counts WHERE n > 0').all();
  console.log(`filled: ${count.toLocaleString('en')} jobs copied in ${((Date.now() - t0) / 1000).toFixed(1)} s; by status ${counts.map((c) => `${c.status} ${c.n}`).join(', ')}`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

// --- 2. the jobs page in chromium ---------------------------------------------------------------
const head = await startHead(HEAD_ARGS, {}, dataDir);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 800 },
});
try {
  const link = execFileSync(process.execPath, [cli, 'dashboard', '--url', '--address', head.url], {
    encoding: 'utf8',
    env: { ...process.env, RAYSUB_TOKEN_FILE: path.join(dataDir, 'token') },
  }).trim();
  const login = await context.newPage();
  await login.goto(link);
  await login.locator('table.jobs').waitFor();
  await login.close();

  const total = JOBS.toLocaleString('en');
  /** Navigation start to the first 50 rows and the total shown, in the page's own clock. */
  const loadJobs = async () => {
    const page = await context.newPage();
    try {
      await page.goto(new URL('/jobs', head.url).toString(), { waitUntil: 'commit' });
      return await page.waitForFunction(
        (want) => {
          const rows = document.querySelectorAll('table.jobs tbody tr').length;
          const pager = document.querySelector('.pager [role="status"]')?.textContent ?? '';
          return rows === 50 && pager.includes(`of ${want}`) ? performance.now() : false;
        },
        total,
        { polling: 'raf', timeout: 30_000 },
      ).then((h) => h.jsonValue());
    } finally {
      await page.close();
    }
  };
  const first = await loadJobs();
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await loadJobs());
  console.log(`\njobs page, ${total} finished jobs, 1280x800:`);
  console.log(`  first load after login: ${first.toFixed(0)} ms (each load a new tab; script and CSS from the cache the login filled)`);
  console.log(`  ${RUNS} loads: ${stats(runs)}`);
  console.log('  target: under 1000 ms');

  // --- 3. the API behind it ----------------------------------------------------------------------
  const headers = { authorization: `Bearer ${head.token}` };
  const time = async (url, n = 20) => {
    const ms = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const res = await fetch(new URL(url, head.url), { headers });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`${url}: ${res.status}`);
      ms.push(performance.now() - t);
    }
    return ms;
  };
  const urls = [
    ['first page, 50 jobs', '/api/jobs/?limit=50'],
    ['a page near the oldest jobs (cursor)', `/api/jobs/?limit=50&cursor=${Buffer.from('120').toString('base64url')}`],
    ['FAILED only, first page', '/api/jobs/?limit=50&status=FAILED'],
    ['label team=speech, first page', '/api/jobs/?limit=50&label=team%3Dspeech'],
    ['counts by status', '/api/cluster/summary'],
    ['counts with label team=vision (capped at the newest 10,000)', '/api/cluster/summary?label=team%3Dvision'],
  ];
  // A warm-up round first, so no figure carries the head's first-request costs.
  for (const [, url] of urls) await time(url, 5);
  console.log('\nAPI answers (20 each, after 5 of each to warm up):');
  for (const [what, url] of urls) console.log(`  ${what}: ${stats(await time(url))}`);
  console.log(`\nhead RSS after: ${rssMiB(head.pid).toFixed(0)} MiB`);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  await head.stop();
}
