/** Which finished jobs retention deletes, decided on a real SQLite file (no head). */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../src/head/db/index.js';
import { retentionRepo } from '../src/head/db/retentionRepo.js';
import { pickExpired, type ScheduleHistoryLimits } from '../src/head/retention.js';
import type { JobStatus } from '../src/shared/protocol/index.js';
import { tempDir } from './helpers/cluster.js';

interface JobSpec {
  id: string;
  status: JobStatus;
  /** Seconds before `now` the job ended (ignored for active jobs). */
  endedAgo?: number;
  schedule?: string;
}

const NOW = 1_800_000_000_000;

function storeWith(jobs: JobSpec[]) {
  const store = openStore(path.join(tempDir(), 'raysub.db'));
  for (const [i, j] of jobs.entries()) {
    store.jobs.insert({
      id: j.id,
      spec_hash: j.id,
      entrypoint: 'true',
      runtime_env: '{}',
      metadata: '{}',
      request: '{}',
      parallel: 1,
      max_retries: 0,
      retry_backoff_s: 1,
      timeout_s: null,
      priority: 0,
      wait_for_capacity: 0,
      memory_limit: 1,
      driver_on_head: 0,
      schedule: j.schedule ?? null,
      status: 'PENDING',
      created_at: NOW - 3_600_000 + i,
    });
    if (j.status !== 'PENDING') store.db.prepare("UPDATE jobs SET status = 'RUNNING' WHERE id = ?").run(j.id);
    if (j.status !== 'PENDING' && j.status !== 'RUNNING') {
      store.jobs.finish({ id: j.id, status: j.status, message: null, error_type: null, exit_code: null, end_time: NOW - (j.endedAgo ?? 0) * 1000 });
    }
  }
  return store;
}

const finished = (n: number, prefix = 'j', extra: Partial<JobSpec> = {}): JobSpec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, status: 'SUCCEEDED', endedAgo: 100 - i, ...extra }));

describe('retention picks', () => {
  const cases: {
    name: string;
    jobs: JobSpec[];
    ttlS?: number;
    max?: number;
    schedules?: ScheduleHistoryLimits[];
    limit?: number;
    want: string[];
  }[] = [
    { name: 'nothing is due with no limits', jobs: finished(5), want: [] },
    { name: 'the TTL takes what ended before it, never active jobs', jobs: [...finished(4), { id: 'run', status: 'RUNNING' }, { id: 'wait', status: 'PENDING' }], ttlS: 98.5, want: ['j0', 'j1'] },
    { name: 'the count keeps the newest finished jobs', jobs: [...finished(5), { id: 'run', status: 'RUNNING' }], max: 2, want: ['j0', 'j1', 'j2'] },
    { name: 'the TTL and the count together', jobs: finished(6), ttlS: 99.5, max: 3, want: ['j0', 'j1', 'j2'] },
    {
      name: 'a schedule keeps its newest succeeded and failed jobs apart; stopped counts as failed',
      jobs: [
        { id: 's-ok-1', status: 'SUCCEEDED', endedAgo: 50, schedule: 'nightly' },
        { id: 's-bad-1', status: 'FAILED', endedAgo: 40, schedule: 'nightly' },
        { id: 's-ok-2', status: 'SUCCEEDED', endedAgo: 30, schedule: 'nightly' },
        { id: 's-stop', status: 'STOPPED', endedAgo: 20, schedule: 'nightly' },
        { id: 's-ok-3', status: 'SUCCEEDED', endedAgo: 10, schedule: 'nightly' },
        { id: 's-run', status: 'RUNNING', schedule: 'nightly' },
        { id: 'other', status: 'SUCCEEDED', endedAgo: 60, schedule: 'hourly' },
        { id: 'plain', status: 'FAILED', endedAgo: 70 },
      ],
      schedules: [{ name: 'nightly', successful: 2, failed: 1 }],
      want: ['s-bad-1', 's-ok-1'],
    },
    { name: 'a history limit of 0 keeps none', jobs: finished(3, 'n', { schedule: 'noisy' }), schedules: [{ name: 'noisy', successful: 0, failed: 0 }], want: ['n0', 'n1', 'n2'] },
    { name: 'a pass takes at most a batch, oldest first', jobs: finished(10), ttlS: 1, limit: 4, want: ['j0', 'j1', 'j2', 'j3'] },
  ];
  it.each(cases)('$name', ({ jobs, ttlS, max, schedules, limit, want }) => {
    const store = storeWith(jobs);
    try {
      const picks = pickExpired(retentionRepo(store.db), { jobTtlMs: (ttlS ?? 0) * 1000, maxFinishedJobs: max ?? 0 }, schedules ?? [], NOW, limit ?? 100);
      expect(picks.map((p) => p.id).sort()).toEqual([...want].sort());
    } finally {
      store.close();
    }
  });
});
