import { DEFAULTS, parseDuration } from '../../shared/config.js';
import { formatBytes } from '../../shared/resources.js';
import { RaysubError } from '../../shared/errors.js';
import { JOB_NAME_KEY, jobStatusSchema, type JobDetails, type JobStatus } from '../../shared/protocol/index.js';
import { statusColor } from '../../ui/color.js';
import { formatAge, renderTable, truncate } from '../../ui/table.js';
import type { CliContext } from '../context.js';
import { EXIT, exitCodeForJob } from '../exitCodes.js';
import { describeOutcome, patientClient, printLogs } from '../follow.js';

function json(ctx: CliContext, value: unknown): void {
  ctx.out.write(JSON.stringify(value, null, 2) + '\n');
}

function time(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function renderJobStatus(ctx: CliContext, job: JobDetails): string {
  const c = ctx.color;
  const lines: string[] = [];
  lines.push(`${c.bold('Job')}        ${job.submission_id}`);
  const r = job.raysub;
  lines.push(`${c.bold('Status')}     ${statusColor(c, job.status)}${r.error_type ? ` (${r.error_type})` : ''}`);
  const name = job.metadata?.[JOB_NAME_KEY];
  if (name !== undefined) lines.push(`${c.bold('Name')}       ${name}`);
  lines.push(`${c.bold('Entrypoint')} ${job.entrypoint}`);
  const labels = Object.entries(job.metadata ?? {}).filter(([k]) => k !== JOB_NAME_KEY);
  if (labels.length) lines.push(`${c.bold('Labels')}     ${labels.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const after = [...r.after.map((id) => `${id} (succeeded)`), ...r.after_any.map((id) => `${id} (ended)`)];
  if (after.length) lines.push(`${c.bold('After')}      ${after.join(', ')}`);
  if (r.held && job.status === 'PENDING') lines.push(`${c.bold('Held')}       yes (raysub job release ${job.submission_id} lets it start)`);
  const message = r.message ?? job.message;
  if (message) lines.push(`${c.bold('Message')}    ${message.split('\n').join('\n           ')}`);
  if (job.driver_exit_code !== null) lines.push(`${c.bold('Exit code')}  ${job.driver_exit_code}`);
  if (r.queue) lines.push(`${c.bold('Queue')}      position ${r.queue.position}: ${r.queue.reason}`);
  lines.push(`${c.bold('Submitted')}  ${time(r.created_at)}   started ${time(r.started_at)}   ended ${time(job.end_time)}`);
  const res = [`${r.entrypoint_num_cpus} CPU`, r.entrypoint_num_gpus ? `${r.entrypoint_num_gpus} GPU` : '', r.entrypoint_memory ? `${r.entrypoint_memory} B memory` : '']
    .filter(Boolean)
    .join(', ');
  lines.push(`${c.bold('Resources')}  ${res} per task${r.parallel > 1 ? ` × ${r.parallel} tasks` : ''}${r.max_retries ? `, up to ${r.max_retries} retries` : ''}${r.timeout_s ? `, timeout ${r.timeout_s}s` : ''}`);
  if (r.array || r.max_concurrent) lines.push(`${c.bold('Array')}      ${[r.array ? `indices ${r.array} (${r.parallel} tasks)` : '', r.max_concurrent ? `at most ${r.max_concurrent} at once` : ''].filter(Boolean).join(', ')}`);
  if (r.schedule) lines.push(`${c.bold('Schedule')}   ${r.schedule}`);
  if (r.usage && r.usage.run_s !== null) lines.push(`${c.bold('Usage')}      ${describeUsage(r.usage)}`);
  if (r.injob) lines.push(`${c.bold('In-job')}     ${describeInjob(r.injob)}`);
  const tasks = r.tasks ?? [];
  const showTasks = tasks.length > 1 || tasks.some((t) => t.attempts.length > 1);
  if (showTasks) {
    lines.push('');
    const rows: string[][] = [];
    for (const t of tasks) {
      for (const a of t.attempts.length ? t.attempts : [null]) {
        rows.push([
          String(t.index),
          a ? String(a.attempt) : '-',
          a && a.attempt !== t.attempt ? (a.outcome ?? '-') : statusColor(c, t.state),
          a?.node_name ?? '-',
          a?.exit_code !== null && a?.exit_code !== undefined ? String(a.exit_code) : '-',
          truncate(a?.error_type ? `${a.error_type}: ${a.message ?? ''}` : (a?.message ?? ''), 60),
        ]);
      }
    }
    lines.push(renderTable(['TASK', 'ATTEMPT', 'STATE', 'NODE', 'EXIT', 'DETAIL'], rows).trimEnd());
  }
  return lines.join('\n') + '\n';
}

/** A job's CPU-seconds for a table: "1.52", "-" before any attempt ended, "n/a" where not counted. */
function cpuSeconds(j: JobDetails): string {
  const u = j.raysub.usage;
  if (!u || u.run_s === null) return '-';
  return u.cpu_s === null ? 'n/a' : u.cpu_s.toFixed(u.cpu_s < 100 ? 2 : 0);
}

function peakMemory(j: JobDetails): string {
  const u = j.raysub.usage;
  if (!u || u.run_s === null) return '-';
  return u.peak_memory === null ? 'n/a' : formatBytes(u.peak_memory);
}

/** "CPU 1.52 s, peak memory 205.3 MiB, ran 3.1 s, 0 GPU-s" (what the attempts that ended used). */
function describeUsage(u: NonNullable<JobDetails['raysub']['usage']>): string {
  const cpu = u.cpu_s === null ? 'CPU not counted (no cgroups on its node)' : `CPU ${u.cpu_s.toFixed(2)} s`;
  const mem = u.peak_memory === null ? 'peak memory not counted' : `peak memory ${formatBytes(u.peak_memory)}`;
  return `${cpu}, ${mem}, ran ${(u.run_s ?? 0).toFixed(1)} s${u.gpu_s ? `, ${u.gpu_s.toFixed(1)} GPU-s` : ''}`;
}

/** "5000 tasks: 4990 finished, 8 running, 2 pending; 2 actors alive" */
function describeInjob(n: NonNullable<JobDetails['raysub']['injob']>): string {
  const total = n.pending + n.running + n.finished + n.failed;
  const parts = (['finished', 'failed', 'running', 'pending'] as const).filter((k) => n[k] > 0).map((k) => `${n[k]} ${k}`);
  const actors = (['actors_alive', 'actors_dead'] as const).filter((k) => n[k] > 0).map((k) => `${n[k]} ${k === 'actors_alive' ? 'alive' : 'dead'}`);
  return `${total} task${total === 1 ? '' : 's'}${parts.length ? `: ${parts.join(', ')}` : ''}${actors.length ? `; actors: ${actors.join(', ')}` : ''}`;
}

export async function statusCommand(ctx: CliContext, id: string, flags: { json?: boolean }): Promise<number> {
  const job = await ctx.client.getJob(id);
  if (flags.json) json(ctx, job);
  else ctx.out.write(renderJobStatus(ctx, job));
  return EXIT.OK;
}

export interface LogsFlags {
  follow?: boolean;
  quiet?: boolean;
  json?: boolean;
  tail?: string;
  since?: string;
  timestamps?: boolean;
  task?: string;
}

/** `--since`: a duration back from now (10m, 2h) or a time (2026-01-31T12:00:00Z). */
export function parseSince(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}/.test(value.trim())) {
    const t = Date.parse(value.trim());
    if (!Number.isFinite(t)) throw new RaysubError('USAGE', `--since must be a duration such as 10m or 2h, or a time such as 2026-01-31T12:00:00Z, got "${value}"`);
    return t;
  }
  const ms = parseDuration('since', value);
  return ms === undefined ? undefined : Math.max(0, now - ms);
}

function wholeNumber(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > max) throw new RaysubError('USAGE', `${name} must be a whole number from 0 to ${max}, got "${value}"`);
  return n;
}

export async function logsCommand(ctx: CliContext, id: string, flags: LogsFlags): Promise<number> {
  const tail = wholeNumber('--tail', flags.tail, 1_000_000_000);
  const since = parseSince(flags.since);
  const task = wholeNumber('--task', flags.task, 100_000);
  const client = flags.follow ? patientClient(ctx) : ctx.client;
  const job = await client.getJob(id);
  const tasks = job.raysub.parallel;
  if (task !== undefined && task >= tasks) throw new RaysubError('USAGE', `--task ${task}: job '${id}' has ${tasks} task${tasks === 1 ? '' : 's'} (0-${tasks - 1})`);
  await printLogs(ctx, id, {
    follow: Boolean(flags.follow),
    prefix: tasks > 1 && task === undefined,
    quiet: flags.quiet,
    json: flags.json,
    task,
    tail,
    since,
    timestamps: flags.timestamps,
  });
  if (!flags.follow) return EXIT.OK;
  const final = await client.waitForJob(id);
  if (flags.json) {
    const { submission_id, status, driver_exit_code } = final;
    ctx.out.write(JSON.stringify({ end: true, submission_id, status, error_type: final.raysub.error_type, driver_exit_code }) + '\n');
  } else if (!flags.quiet) ctx.err.write(describeOutcome(ctx, final) + '\n');
  return exitCodeForJob(final);
}

export async function stopCommand(ctx: CliContext, id: string, flags: { wait?: boolean; json?: boolean }): Promise<number> {
  const stopped = await ctx.client.stopJob(id);
  if (flags.wait === false) {
    if (flags.json) json(ctx, { submission_id: id, stopped });
    else ctx.err.write(stopped ? `Stop requested for job '${id}'.\n` : `Job '${id}' had already finished.\n`);
    return EXIT.OK;
  }
  const job = await ctx.client.waitForJob(id);
  if (flags.json) json(ctx, job);
  else ctx.err.write(describeOutcome(ctx, job) + '\n');
  return EXIT.OK;
}

export async function waitCommand(ctx: CliContext, id: string, flags: { timeout?: string; json?: boolean }): Promise<number> {
  let timeoutMs: number | undefined;
  if (flags.timeout !== undefined) {
    const s = Number(flags.timeout);
    if (!Number.isFinite(s) || s < 0) throw new RaysubError('USAGE', `--timeout must be seconds >= 0, got "${flags.timeout}"`);
    timeoutMs = s * 1000;
  }
  try {
    const job = await ctx.client.waitForJob(id, { timeoutMs });
    if (flags.json) json(ctx, job);
    else ctx.err.write(describeOutcome(ctx, job) + '\n');
    return exitCodeForJob(job);
  } catch (err) {
    if (err instanceof RaysubError && err.code === 'WAIT_TIMEOUT' && flags.json) {
      json(ctx, await ctx.client.getJob(id));
      return EXIT.WAIT_TIMEOUT;
    }
    throw err;
  }
}

/** The one thing worth knowing about a job in a list: why it failed, why it waits, what fired it. */
function listDetail(j: JobDetails): string {
  if (j.status === 'FAILED') return `${j.raysub.error_type ?? ''} ${(j.raysub.message ?? j.message ?? '').split('\n')[0]}`;
  if (j.status === 'PENDING' && j.raysub.held) return 'held';
  if (j.status === 'PENDING') return j.raysub.queue?.reason ?? j.raysub.message ?? j.message ?? '';
  return j.raysub.schedule ? `schedule ${j.raysub.schedule}` : '';
}

export async function holdCommand(ctx: CliContext, id: string, held: boolean, flags: { json?: boolean }): Promise<number> {
  await ctx.client.holdJob(id, held);
  if (flags.json) json(ctx, { submission_id: id, held });
  else ctx.err.write(held ? `Job '${id}' held; raysub job release ${id} lets it start.\n` : `Job '${id}' released.\n`);
  return EXIT.OK;
}

export async function listCommand(
  ctx: CliContext,
  flags: { limit?: string; cursor?: string; status?: string; schedule?: string; label?: string[]; name?: string; since?: string; json?: boolean },
): Promise<number> {
  const limit = flags.limit === undefined ? DEFAULTS.listLimit : Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new RaysubError('USAGE', '--limit must be a whole number from 1 to 10000');
  let status: JobStatus[] | undefined;
  if (flags.status) {
    status = flags.status.split(',').map((s) => {
      const r = jobStatusSchema.safeParse(s.trim().toUpperCase());
      if (!r.success) throw new RaysubError('USAGE', `--status: "${s}" is not one of ${jobStatusSchema.options.join(', ')}`);
      return r.data;
    });
  }
  for (const l of flags.label ?? []) if (l === '' || l.startsWith('=')) throw new RaysubError('USAGE', `--label must be key or key=value, got "${l}"`);
  const since = parseSince(flags.since);
  const { jobs, nextCursor } = await ctx.client.listJobs({ limit, cursor: flags.cursor, status, schedule: flags.schedule, labels: flags.label, name: flags.name, since });
  if (flags.json) {
    json(ctx, { jobs, next_cursor: nextCursor });
    return EXIT.OK;
  }
  const now = Date.now();
  const named = jobs.some((j) => j.metadata?.[JOB_NAME_KEY] !== undefined);
  const rows = jobs.map((j) => [
    j.submission_id,
    ...(named ? [truncate(j.metadata?.[JOB_NAME_KEY] ?? '-', 24)] : []),
    statusColor(ctx.color, j.status),
    formatAge(now - j.raysub.created_at) + ' ago',
    j.raysub.started_at ? formatAge((j.end_time ?? now) - j.raysub.started_at) : '-',
    j.raysub.parallel > 1 ? String(j.raysub.parallel) : '1',
    cpuSeconds(j),
    peakMemory(j),
    truncate(j.entrypoint, 40),
    truncate(listDetail(j), 80),
  ]);
  if (rows.length === 0) ctx.out.write('No jobs.\n');
  else ctx.out.write(renderTable(['ID', ...(named ? ['NAME'] : []), 'STATUS', 'SUBMITTED', 'DURATION', 'TASKS', 'CPU-S', 'PEAK-MEM', 'ENTRYPOINT', 'DETAIL'], rows, ctx.isTTY ? ctx.out.columns : undefined));
  if (nextCursor) ctx.err.write(`More jobs: raysub job list --cursor ${nextCursor}\n`);
  return EXIT.OK;
}

export async function deleteCommand(ctx: CliContext, id: string, flags: { json?: boolean }): Promise<number> {
  await ctx.client.deleteJob(id);
  if (flags.json) json(ctx, { submission_id: id, deleted: true });
  else ctx.err.write(`Job '${id}' deleted.\n`);
  return EXIT.OK;
}
