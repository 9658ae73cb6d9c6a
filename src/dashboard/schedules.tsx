import { useState } from 'preact/hooks';
import type { ScheduleInfo, ScheduleRun } from '../shared/protocol/index.js';
import { enc, getJson, send } from './api.js';
import { formatAgo, formatTime, isoTime } from './format.js';
import { useNow, usePoll } from './live.js';
import { Link, jobHref, scheduleHref } from './router.js';
import { StatusBadge } from './status.js';

function runText(run: ScheduleRun | null): string {
  if (!run) return 'never';
  return `${run.action}${run.trigger !== 'cron' ? ` (${run.trigger})` : ''}`;
}

export function SchedulesPage() {
  const now = useNow(1000);
  const { data, error } = usePoll((signal) => getJson<{ schedules: ScheduleInfo[] }>('/api/schedules', signal), 5000);
  return (
    <section aria-labelledby="schedules-title">
      <h1 id="schedules-title">Schedules</h1>
      {error && (
        <p class="error" role="alert">
          Could not load the schedules: {error}
        </p>
      )}
      {!data && !error && <p role="status">Loading schedules…</p>}
      {data && data.schedules.length === 0 && (
        <p>
          No schedules: create one with <code>raysub schedule create NAME --cron EXPR -- COMMAND</code>.
        </p>
      )}
      {data && data.schedules.length > 0 && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Schedules table">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Cron</th>
                <th scope="col">State</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col">Running</th>
              </tr>
            </thead>
            <tbody>
              {data.schedules.map((s) => (
                <tr key={s.name}>
                  <th scope="row">
                    <Link href={scheduleHref(s.name)}>{s.name}</Link>
                  </th>
                  <td>
                    <code>{s.cron}</code> <span class="muted">{s.timezone}</span>
                  </td>
                  <td>{s.suspended ? 'paused' : 'active'}</td>
                  <td>
                    <time dateTime={isoTime(s.next_run_at)}>{s.next_run_at ? `${formatTime(s.next_run_at, now)} (${formatAgo(s.next_run_at, now)})` : '—'}</time>
                  </td>
                  <td>
                    {s.last_run ? (
                      <>
                        {formatAgo(s.last_run.fired_at, now)}: {runText(s.last_run)}{' '}
                        {s.last_run.job_id && <Link href={jobHref(s.last_run.job_id)}>{s.last_run.job_id}</Link>}
                      </>
                    ) : (
                      'never'
                    )}
                  </td>
                  <td>{s.active_jobs.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function SchedulePage({ name }: { name: string }) {
  const now = useNow(1000);
  const sched = usePoll((signal) => getJson<ScheduleInfo>(`/api/schedules/${enc(name)}`, signal), 3000, [name]);
  const runs = usePoll((signal) => getJson<{ runs: ScheduleRun[] }>(`/api/schedules/${enc(name)}/runs?limit=100`, signal), 3000, [name]);
  const [action, setAction] = useState<{ busy: boolean; message: string | null; error: boolean }>({ busy: false, message: null, error: false });

  const act = async (what: 'pause' | 'resume' | 'trigger', label: string): Promise<void> => {
    setAction({ busy: true, message: `${label}…`, error: false });
    try {
      const res = await send<ScheduleRun | ScheduleInfo>('POST', `/api/schedules/${enc(name)}/${what}`, what === 'trigger' ? {} : undefined);
      const started = 'action' in res ? `Run ${res.action}${res.job_id ? `: ${res.job_id}` : ''}${res.detail ? ` (${res.detail})` : ''}.` : `${label}: done.`;
      setAction({ busy: false, message: started, error: false });
      sched.reload();
      runs.reload();
    } catch (err) {
      setAction({ busy: false, message: `${label} failed: ${err instanceof Error ? err.message : String(err)}`, error: true });
    }
  };

  const s = sched.data;
  if (sched.error && !s) {
    return (
      <section>
        <h1>Schedule {name}</h1>
        <p class="error" role="alert">
          {sched.error}
        </p>
      </section>
    );
  }
  if (!s) return <p role="status">Loading schedule {name}…</p>;
  return (
    <article aria-labelledby="schedule-title">
      <p class="crumbs">
        <Link href="/schedules">Schedules</Link> /
      </p>
      <div class="section-head">
        <h1 id="schedule-title">{s.name}</h1>
        <span class="badge">{s.suspended ? 'paused' : 'active'}</span>
        <div class="actions">
          {s.suspended ? (
            <button type="button" disabled={action.busy} onClick={() => void act('resume', 'Resuming')}>
              Resume
            </button>
          ) : (
            <button type="button" disabled={action.busy} onClick={() => void act('pause', 'Pausing')}>
              Pause
            </button>
          )}
          <button type="button" disabled={action.busy} onClick={() => void act('trigger', 'Triggering')}>
            Run now
          </button>
        </div>
      </div>
      <p role="status" class={action.error ? 'error' : 'muted'}>
        {action.message ?? ''}
      </p>
      <dl class="details">
        <dt>Cron</dt>
        <dd>
          <code>{s.cron}</code> in {s.timezone}
        </dd>
        <dt>Next run</dt>
        <dd>{s.next_run_at ? `${formatTime(s.next_run_at, now)} (${formatAgo(s.next_run_at, now)})` : '— (paused)'}</dd>
        <dt>Concurrency</dt>
        <dd>{s.concurrency}</dd>
        <dt>Entrypoint</dt>
        <dd>
          <code>{s.job.entrypoint}</code>
        </dd>
        <dt>Running now</dt>
        <dd>
          {s.active_jobs.length === 0
            ? 'none'
            : s.active_jobs.map((j, i) => (
                <span key={j}>
                  {i > 0 && ', '}
                  <Link href={jobHref(j)}>{j}</Link>
                </span>
              ))}
        </dd>
      </dl>
      <section aria-labelledby="runs-title">
        <h2 id="runs-title">History</h2>
        {runs.data && runs.data.runs.length === 0 && <p>No runs yet.</p>}
        {runs.data && runs.data.runs.length > 0 && (
          <div class="table-wrap" tabIndex={0} role="region" aria-label="Runs table">
            <table>
              <thead>
                <tr>
                  <th scope="col">Due</th>
                  <th scope="col">Fired</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Action</th>
                  <th scope="col">Job</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {runs.data.runs.map((r) => (
                  <tr key={r.seq}>
                    <td>{formatTime(r.scheduled_at, now)}</td>
                    <td>{formatTime(r.fired_at, now)}</td>
                    <td>{r.trigger}</td>
                    <td>{r.action}</td>
                    <td>
                      {r.job_id ? <Link href={jobHref(r.job_id)}>{r.job_id}</Link> : '—'} {r.job_status && <StatusBadge status={r.job_status} />}
                    </td>
                    <td>{r.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </article>
  );
}
