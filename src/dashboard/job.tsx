import { useState } from 'preact/hooks';
import type { JobDetails, JobSubmitRequest, TaskInfo } from '../shared/protocol/index.js';
import { enc, getJson, send } from './api.js';
import { formatDuration, formatNumber, formatResources, formatTime, isoTime } from './format.js';
import { labelsOf } from './jobs.js';
import { usePoll, useNow } from './live.js';
import { LogView } from './logView.js';
import { Link, jobHref, navigate, scheduleHref } from './router.js';
import { StatusBadge } from './status.js';

const active = (j: JobDetails): boolean => j.status === 'PENDING' || j.status === 'RUNNING';

/** The same job again under a new id: its entrypoint, runtime env, resources, labels and options. */
export function resubmitRequest(job: JobDetails): JobSubmitRequest {
  const metadata = Object.fromEntries(labelsOf(job));
  const r = job.raysub;
  return {
    entrypoint: job.entrypoint,
    ...(job.runtime_env ? { runtime_env: job.runtime_env } : {}),
    metadata,
    entrypoint_num_cpus: r.entrypoint_num_cpus,
    entrypoint_num_gpus: r.entrypoint_num_gpus,
    entrypoint_memory: r.entrypoint_memory,
    entrypoint_resources: r.entrypoint_resources,
    raysub: {
      parallel: r.parallel,
      max_retries: r.max_retries,
      retry_backoff_s: r.retry_backoff_s,
      ...(r.timeout_s !== null ? { timeout_s: r.timeout_s } : {}),
      priority: r.priority,
      wait_for_capacity: r.wait_for_capacity,
    },
  };
}

export function JobPage({ id }: { id: string }) {
  const now = useNow(1000);
  const { data: job, error, reload } = usePoll((signal) => getJson<JobDetails>(`/api/jobs/${enc(id)}`, signal), 2000, [id]);
  const [confirmStop, setConfirmStop] = useState(false);
  const [action, setAction] = useState<{ busy: boolean; message: string | null; error: boolean }>({ busy: false, message: null, error: false });
  const [lastStatus, setLastStatus] = useState<string | null>(null);

  const run = async (what: string, fn: () => Promise<void>): Promise<void> => {
    setAction({ busy: true, message: `${what}…`, error: false });
    try {
      await fn();
      setAction({ busy: false, message: null, error: false });
    } catch (err) {
      setAction({ busy: false, message: `${what} failed: ${err instanceof Error ? err.message : String(err)}`, error: true });
    }
  };

  const stop = (): Promise<void> =>
    run('Stopping', async () => {
      setConfirmStop(false);
      await send('POST', `/api/jobs/${enc(id)}/stop`);
      reload();
    });

  const resubmit = (j: JobDetails): Promise<void> =>
    run('Resubmitting', async () => {
      const res = await send<{ submission_id: string }>('POST', '/api/jobs/', resubmitRequest(j));
      navigate(jobHref(res.submission_id));
    });

  if (error && !job) {
    return (
      <section>
        <h1>Job {id}</h1>
        <p class="error" role="alert">
          {error}
        </p>
        <p>
          <Link href="/jobs">Back to the jobs</Link>
        </p>
      </section>
    );
  }
  if (!job) return <p role="status">Loading job {id}…</p>;

  // The page's clock may be a moment behind the head's: a running job's duration never goes below 0.
  // Ray's start_time is the submission; raysub.started_at is when the job began to run.
  const started = job.raysub.started_at;
  const end = job.end_time ?? (started !== null ? Math.max(now, started) : null);
  // raysub's own account and error code are finer than Ray's (which Ray's clients read).
  const message = job.raysub.message ?? job.message;
  const errorType = job.raysub.error_type ?? job.error_type;
  const labels = labelsOf(job);
  const r = job.raysub;
  return (
    <article aria-labelledby="job-title" class="job">
      <p class="crumbs">
        <Link href="/jobs">Jobs</Link> /
      </p>
      <div class="section-head">
        <h1 id="job-title">{job.submission_id}</h1>
        <StatusBadge status={job.status} />
        <div class="actions">
          {active(job) && !confirmStop && (
            <button type="button" class="danger" disabled={action.busy} onClick={() => setConfirmStop(true)}>
              Stop job
            </button>
          )}
          {active(job) && confirmStop && (
            <span role="group" aria-label="Confirm stop" class="confirm">
              Stop this job?{' '}
              <button type="button" class="danger" onClick={() => void stop()}>
                Yes, stop it
              </button>
              <button type="button" onClick={() => setConfirmStop(false)}>
                Cancel
              </button>
            </span>
          )}
          <button type="button" disabled={action.busy} onClick={() => void resubmit(job)}>
            Resubmit as a new job
          </button>
        </div>
      </div>
      <p role="status" class={action.error ? 'error' : 'muted'}>
        {action.message ?? (lastStatus && lastStatus !== job.status ? `Now ${lastStatus}` : '')}
      </p>
      {message && <p class={job.status === 'FAILED' ? 'error' : 'message'}>{message}</p>}
      <dl class="details">
        <dt>Entrypoint</dt>
        <dd>
          <code>{job.entrypoint}</code>
        </dd>
        {errorType && (
          <>
            <dt>Error</dt>
            <dd>
              {errorType}
              {job.driver_exit_code !== null ? ` (exit code ${job.driver_exit_code})` : ''}
            </dd>
          </>
        )}
        {errorType === null && job.driver_exit_code !== null && (
          <>
            <dt>Exit code</dt>
            <dd>{job.driver_exit_code}</dd>
          </>
        )}
        <dt>Submitted</dt>
        <dd>
          <time dateTime={isoTime(r.created_at)}>{formatTime(r.created_at, now)}</time>
        </dd>
        <dt>Started</dt>
        <dd>
          <time dateTime={isoTime(started)}>{formatTime(started, now)}</time>
        </dd>
        <dt>Ended</dt>
        <dd>
          <time dateTime={isoTime(job.end_time)}>{formatTime(job.end_time, now)}</time>
        </dd>
        <dt>Duration</dt>
        <dd>{started !== null && end !== null ? formatDuration(end - started) : '—'}</dd>
        <dt>Resources per task</dt>
        <dd>{formatResources(r)}</dd>
        <dt>Tasks</dt>
        <dd>
          {r.parallel}
          {Object.entries(r.task_counts).length > 0 && ` (${Object.entries(r.task_counts).map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ')})`}
        </dd>
        {r.queue && (
          <>
            <dt>Queue</dt>
            <dd>{r.queue.position > 0 ? `#${r.queue.position}: ${r.queue.reason}` : r.queue.reason}</dd>
          </>
        )}
        <dt>Policy</dt>
        <dd>
          priority {r.priority}, {r.max_retries} retr{r.max_retries === 1 ? 'y' : 'ies'}
          {r.timeout_s !== null ? `, timeout ${formatDuration(r.timeout_s * 1000)}` : ''}
        </dd>
        {r.schedule && (
          <>
            <dt>Schedule</dt>
            <dd>
              <Link href={scheduleHref(r.schedule)}>{r.schedule}</Link>
            </dd>
          </>
        )}
        {labels.length > 0 && (
          <>
            <dt>Labels</dt>
            <dd>{labels.map(([k, v]) => `${k}=${v}`).join(', ')}</dd>
          </>
        )}
        {r.injob && Object.values(r.injob).some((n) => n > 0) && (
          <>
            <dt>In-job work</dt>
            <dd>
              tasks: {formatNumber(r.injob.running)} running, {formatNumber(r.injob.pending)} pending, {formatNumber(r.injob.finished)} finished, {formatNumber(r.injob.failed)} failed; actors:{' '}
              {formatNumber(r.injob.actors_alive)} alive, {formatNumber(r.injob.actors_dead)} dead
            </dd>
          </>
        )}
      </dl>
      {job.runtime_env && Object.keys(job.runtime_env).length > 0 && (
        <details>
          <summary>Runtime environment</summary>
          <pre class="json">{JSON.stringify(job.runtime_env, null, 2)}</pre>
        </details>
      )}
      {r.tasks && <Tasks tasks={r.tasks} now={now} />}
      <LogView
        id={id}
        parallel={r.parallel}
        onState={(s) => {
          setLastStatus(s);
          if (s !== job.status) reload();
        }}
      />
      {action.error && <ApiHint />}
    </article>
  );
}

function ApiHint() {
  return <p class="hint">If this keeps failing, the head's answer above says why (a package collected since, a full disk…).</p>;
}

function Tasks({ tasks, now }: { tasks: TaskInfo[]; now: number }) {
  return (
    <section aria-labelledby="tasks-title">
      <h2 id="tasks-title">Tasks and attempts</h2>
      <div class="table-wrap" tabIndex={0} role="region" aria-label="Tasks table">
        <table>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Attempt</th>
              <th scope="col">State</th>
              <th scope="col">Node</th>
              <th scope="col">Started</th>
              <th scope="col">Ended</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {tasks.flatMap((t) =>
              (t.attempts.length ? t.attempts : [null]).map((a, i) => (
                <tr key={`${t.index}-${a?.attempt ?? 0}`}>
                  {i === 0 && (
                    <th scope="row" rowSpan={Math.max(1, t.attempts.length)}>
                      {t.index}
                    </th>
                  )}
                  <td>{a ? a.attempt : '—'}</td>
                  <td>{a && a.attempt === t.attempt ? <StatusBadge status={t.state} /> : a?.outcome ?? <StatusBadge status={t.state} />}</td>
                  <td>{a?.node_name ?? a?.node_id ?? '—'}</td>
                  <td>{formatTime(a?.started_at ?? null, now)}</td>
                  <td>{formatTime(a?.ended_at ?? null, now)}</td>
                  <td>
                    {a?.error_type ?? ''}
                    {a?.exit_code !== null && a?.exit_code !== undefined ? ` exit ${a.exit_code}` : ''}
                    {a?.message ? <span class="muted"> {a.message}</span> : null}
                  </td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}

