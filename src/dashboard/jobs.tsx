import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { JobCountsResponse, JobDetails, JobStatus } from '../shared/protocol/index.js';
import { enc, getJson, request } from './api.js';
import { formatDuration, formatNumber, formatResources, formatTime, isoTime } from './format.js';
import { useJobChanges, useNow } from './live.js';
import { Link, jobHref, navigate, useLocation } from './router.js';
import { StatusBadge } from './status.js';

const PAGE_SIZE = 50;
const STATUSES: JobStatus[] = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];

interface Page {
  jobs: JobDetails[];
  next: string | null;
}

/** Labels worth showing: the metadata less Ray's own submission id and a name that only repeats the id. */
export function labelsOf(job: Pick<JobDetails, 'metadata' | 'submission_id'>): [string, string][] {
  return Object.entries(job.metadata ?? {}).filter(([k, v]) => k !== 'job_submission_id' && !(k === 'job_name' && v === job.submission_id));
}

/** Reserved resource time: what the job held, not what it used (the head does not measure use). */
function usage(job: JobDetails, now: number): string {
  const r = job.raysub;
  if (r.started_at === null) return '—';
  const hours = Math.max(0, (job.end_time ?? now) - r.started_at) / 3_600_000;
  const parts = [`${formatNumber(Math.round(r.entrypoint_num_cpus * r.parallel * hours * 100) / 100)} CPU·h`];
  if (r.entrypoint_num_gpus) parts.push(`${formatNumber(Math.round(r.entrypoint_num_gpus * r.parallel * hours * 100) / 100)} GPU·h`);
  return parts.join(' · ');
}

function listUrl(status: string | null, label: string | null, cursor: string | null): string {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (status) q.set('status', status);
  if (label) q.set('label', label);
  if (cursor) q.set('cursor', cursor);
  return `/api/jobs/?${q.toString()}`;
}

export function JobsPage() {
  const { query } = useLocation();
  const status = query.get('status');
  const label = query.get('label');
  const now = useNow(1000);
  const [counts, setCounts] = useState<JobCountsResponse | null>(null);
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Cursors of the pages before this one (newest first): "Newer" pops, "Older" pushes.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const loading = useRef<AbortController | null>(null);

  const load = useCallback(async (): Promise<void> => {
    loading.current?.abort();
    const ac = new AbortController();
    loading.current = ac;
    try {
      const [res, summary] = await Promise.all([
        request(listUrl(status, label, cursor), { signal: ac.signal }),
        label ? getJson<JobCountsResponse>(`/api/cluster/summary?label=${enc(label)}`, ac.signal) : Promise.resolve(null),
      ]);
      const jobs = (await res.json()) as JobDetails[];
      if (ac.signal.aborted) return;
      setPage({ jobs, next: res.headers.get('x-next-cursor') });
      if (summary) setCounts(summary);
      setError(null);
    } catch (err) {
      if (!ac.signal.aborted) setError(err instanceof Error ? err.message : String(err));
    }
  }, [status, label, cursor]);

  useEffect(() => {
    void load();
    // A slow refresh too, for what the change events do not carry (a queue reason, a new attempt).
    const t = setInterval(() => void load(), 10_000);
    return () => {
      clearInterval(t);
      loading.current?.abort();
    };
  }, [load]);

  useJobChanges((c) => {
    if (!label) setCounts(c);
    void load();
  });

  const setFilter = (next: { status?: string | null; label?: string | null }): void => {
    const q = new URLSearchParams();
    const s = next.status !== undefined ? next.status : status;
    const l = next.label !== undefined ? next.label : label;
    if (s) q.set('status', s);
    if (l) q.set('label', l);
    setCursors([null]);
    setPage(null);
    navigate(`/jobs${q.size ? `?${q.toString()}` : ''}`);
  };

  const total = counts ? (status ? (counts.counts[status as JobStatus] ?? 0) : counts.total) : null;
  const first = (cursors.length - 1) * PAGE_SIZE + 1;

  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <div class="filters">
        <div role="group" aria-label="Filter by status" class="tabs">
          <button type="button" aria-pressed={!status} onClick={() => setFilter({ status: null })}>
            All <span class="count">{counts ? formatNumber(counts.total) : ''}</span>
          </button>
          {STATUSES.map((s) => (
            <button type="button" key={s} aria-pressed={status === s} onClick={() => setFilter({ status: s })}>
              {s.charAt(0) + s.slice(1).toLowerCase()} <span class="count">{counts ? formatNumber(counts.counts[s] ?? 0) : ''}</span>
            </button>
          ))}
        </div>
        <LabelFilter value={label} onChange={(l) => setFilter({ label: l })} />
      </div>
      {counts?.capped && <p class="hint">Counts with a label filter cover the newest 10,000 jobs carrying it.</p>}
      {error && (
        <p class="error" role="alert">
          Could not load the jobs: {error}
        </p>
      )}
      {page === null && !error && <p role="status">Loading jobs…</p>}
      {page && page.jobs.length === 0 && <p>No jobs{status || label ? ' match these filters' : ' yet: submit one with raysub job submit'}.</p>}
      {page && page.jobs.length > 0 && (
        <>
          <div class="table-wrap" tabIndex={0} role="region" aria-label="Jobs table">
            <table class="jobs">
              <caption class="visually-hidden">Jobs, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Status</th>
                  <th scope="col">Job</th>
                  <th scope="col">Entrypoint</th>
                  <th scope="col">Resources</th>
                  <th scope="col">Queue</th>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Usage</th>
                </tr>
              </thead>
              <tbody>
                {page.jobs.map((j) => (
                  <JobRow key={j.submission_id} job={j} now={now} onLabel={(l) => setFilter({ label: l })} />
                ))}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages">
            <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              ← Newer
            </button>
            <span role="status">
              {formatNumber(first)}–{formatNumber(first + page.jobs.length - 1)}
              {total !== null ? ` of ${formatNumber(total)}${counts?.capped ? '+' : ''}` : ''}
            </span>
            <button type="button" disabled={!page.next} onClick={() => page.next && setCursors([...cursors, page.next])}>
              Older →
            </button>
          </nav>
        </>
      )}
    </section>
  );
}

function JobRow({ job, now, onLabel }: { job: JobDetails; now: number; onLabel: (l: string) => void }) {
  const labels = labelsOf(job);
  // The page's clock may be a moment behind the head's: a running job's duration never goes below 0.
  // Ray's start_time is the submission; raysub.started_at is when the job began to run.
  const started = job.raysub.started_at;
  const end = job.end_time ?? (started !== null ? Math.max(now, started) : null);
  const queue = job.raysub.queue;
  return (
    <tr>
      <td data-label="Status">
        <StatusBadge status={job.status} />
      </td>
      <td data-label="Job" class="job-id">
        <Link href={jobHref(job.submission_id)}>{job.submission_id}</Link>
        {labels.length > 0 && (
          <ul class="labels" aria-label="Labels">
            {labels.slice(0, 4).map(([k, v]) => (
              <li key={k}>
                <button type="button" class="chip" title={`Show jobs labelled ${k}=${v}`} onClick={() => onLabel(`${k}=${v}`)}>
                  {k}={v.length > 24 ? `${v.slice(0, 23)}…` : v}
                </button>
              </li>
            ))}
            {labels.length > 4 && <li class="more">+{labels.length - 4}</li>}
          </ul>
        )}
      </td>
      <td data-label="Entrypoint" class="entrypoint">
        <code title={job.entrypoint}>{job.entrypoint.length > 80 ? `${job.entrypoint.slice(0, 79)}…` : job.entrypoint}</code>
      </td>
      <td data-label="Resources">
        {formatResources(job.raysub)}
        {job.raysub.parallel > 1 && <span class="muted"> × {job.raysub.parallel}</span>}
      </td>
      <td data-label="Queue" class="queue">{queue ? (queue.position > 0 ? <span title={queue.reason}>#{queue.position}: {queue.reason}</span> : queue.reason) : '—'}</td>
      <td data-label="Started">
        <time dateTime={isoTime(started)}>{formatTime(started, now)}</time>
      </td>
      <td data-label="Ended">
        <time dateTime={isoTime(job.end_time)}>{formatTime(job.end_time, now)}</time>
      </td>
      <td data-label="Duration">{started !== null && end !== null ? formatDuration(end - started) : '—'}</td>
      <td data-label="Usage">{usage(job, now)}</td>
    </tr>
  );
}

function LabelFilter({ value, onChange }: { value: string | null; onChange: (l: string | null) => void }) {
  const [text, setText] = useState(value ?? '');
  useEffect(() => setText(value ?? ''), [value]);
  return (
    <form
      class="label-filter"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        onChange(text.trim() || null);
      }}
    >
      <label for="label-filter">Label</label>
      <input id="label-filter" type="text" placeholder="key or key=value" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
      <button type="submit">Filter</button>
      {value && (
        <button type="button" onClick={() => onChange(null)}>
          Clear
        </button>
      )}
    </form>
  );
}
