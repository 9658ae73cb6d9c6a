import { compileCron, formatInZone } from '../../shared/cron.js';
import { RaysubError } from '../../shared/errors.js';
import { describeZodError, scheduleCreateRequestSchema, type ScheduleCreateRequest, type ScheduleRun } from '../../shared/protocol/index.js';
import { statusColor, type Palette } from '../../ui/color.js';
import { formatAge, renderTable, truncate } from '../../ui/table.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';
import { buildSubmitRequest, joinEntrypoint, runtimeEnvWithPackages, type SubmitFlags } from './submit.js';

export interface CreateFlags extends SubmitFlags {
  cron: string;
  timezone?: string;
  concurrency?: string;
  startingDeadline?: string;
  successfulJobsHistoryLimit?: string;
  failedJobsHistoryLimit?: string;
  suspend?: boolean;
  update?: boolean;
}

function json(ctx: CliContext, value: unknown): void {
  ctx.out.write(JSON.stringify(value, null, 2) + '\n');
}

/** "in 3m20s" / "5s ago" relative to now. */
export function relative(ms: number | null, now = Date.now()): string {
  if (ms === null) return '-';
  return ms >= now ? `in ${formatAge(ms - now)}` : `${formatAge(now - ms)} ago`;
}

/** When the next run is: "in 3m20s", or "due now" for one the head is about to fire. */
export function nextRun(ms: number, now = Date.now()): string {
  return ms > now ? relative(ms, now) : 'due now';
}

/** A run's outcome in one word: its job's status, or what the head did instead. */
export function runOutcome(c: Palette, run: ScheduleRun | null): string {
  if (!run) return '-';
  if (run.action === 'started') return run.job_status ? statusColor(c, run.job_status) : 'deleted';
  return run.action === 'skipped' || run.action === 'missed' ? c.yellow(run.action) : c.red(run.action);
}

export async function createCommand(ctx: CliContext, name: string, args: string[], flags: CreateFlags): Promise<number> {
  if (args.length === 0) throw new RaysubError('USAGE', 'missing entrypoint: raysub schedule create NAME --cron EXPR [options] -- <command...>');
  let deadline: number | null = null;
  if (flags.startingDeadline !== undefined) {
    deadline = Number(flags.startingDeadline);
    if (!Number.isFinite(deadline) || deadline < 1) throw new RaysubError('USAGE', `--starting-deadline must be seconds >= 1, got "${flags.startingDeadline}"`);
  }
  const limit = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 10_000) throw new RaysubError('USAGE', `--${flag} must be a whole number from 0 to 10000, got "${value}"`);
    return n;
  };
  const successful = limit('successful-jobs-history-limit', flags.successfulJobsHistoryLimit);
  const failed = limit('failed-jobs-history-limit', flags.failedJobsHistoryLimit);
  const entrypoint = joinEntrypoint(args);
  const draft = {
    name,
    cron: flags.cron,
    timezone: flags.timezone ?? 'UTC',
    concurrency: flags.concurrency as ScheduleCreateRequest['concurrency'],
    starting_deadline_s: deadline,
    ...(flags.suspend ? { suspend: true } : {}),
    ...(successful !== undefined ? { successful_jobs_history_limit: successful } : {}),
    ...(failed !== undefined ? { failed_jobs_history_limit: failed } : {}),
  };
  // Check the name, expression and zone before packing and uploading anything.
  const checked = scheduleCreateRequestSchema.safeParse({ ...draft, job: { entrypoint } });
  if (!checked.success) throw new RaysubError('USAGE', describeZodError(checked.error));
  const quiet = Boolean(flags.quiet || flags.json);
  const env = await runtimeEnvWithPackages(ctx, flags, quiet);
  // A schedule's runs get their ids from the head, so the generated one is dropped.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { submission_id, ...job } = buildSubmitRequest(flags, entrypoint, env);
  const info = await ctx.client.createSchedule({ ...draft, job }, { update: Boolean(flags.update) });
  if (flags.json) json(ctx, info);
  else if (!flags.quiet) {
    const next = info.next_run_at === null ? 'paused' : `next run ${formatInZone(info.next_run_at, info.timezone)} (${nextRun(info.next_run_at)})`;
    ctx.err.write(`Schedule '${info.name}' saved: "${info.cron}" in ${info.timezone}, concurrency ${info.concurrency}; ${next}.\n`);
  }
  return EXIT.OK;
}

export async function listCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const schedules = await ctx.client.listSchedules();
  if (flags.json) {
    json(ctx, { schedules });
    return EXIT.OK;
  }
  if (schedules.length === 0) {
    ctx.out.write('No schedules.\n');
    return EXIT.OK;
  }
  const c = ctx.color;
  const now = Date.now();
  const rows = schedules.map((s) => [
    s.name,
    s.cron,
    s.timezone,
    s.concurrency,
    s.suspended ? c.yellow('paused') : 'active',
    s.next_run_at === null ? '-' : nextRun(s.next_run_at, now),
    s.last_run ? relative(s.last_run.fired_at, now) : '-',
    runOutcome(c, s.last_run),
    String(s.active_jobs.length),
  ]);
  ctx.out.write(renderTable(['NAME', 'CRON', 'TIMEZONE', 'CONCURRENCY', 'STATE', 'NEXT RUN', 'LAST RUN', 'LAST STATUS', 'ACTIVE'], rows));
  return EXIT.OK;
}

function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function runsTable(c: Palette, runs: ScheduleRun[]): string {
  const rows = runs.map((r) => [
    utc(r.scheduled_at),
    r.trigger,
    `+${r.fired_at - r.scheduled_at}ms`,
    r.action,
    r.job_id ?? '-',
    runOutcome(c, r),
    truncate(r.detail ?? '', 70),
  ]);
  return renderTable(['SCHEDULED', 'TRIGGER', 'FIRED', 'ACTION', 'JOB', 'STATUS', 'DETAIL'], rows);
}

export async function getCommand(ctx: CliContext, name: string, flags: { json?: boolean }): Promise<number> {
  const s = await ctx.client.getSchedule(name);
  if (flags.json) {
    json(ctx, s);
    return EXIT.OK;
  }
  const c = ctx.color;
  const label = (l: string) => c.bold(l.padEnd(12));
  const lines = [
    `${label('Schedule')}${s.name}`,
    `${label('Cron')}${s.cron} (${s.timezone})`,
    `${label('Concurrency')}${s.concurrency}${s.starting_deadline_s !== null ? `, starting deadline ${s.starting_deadline_s}s` : ''}`,
    `${label('State')}${s.suspended ? c.yellow('paused') : 'active'}`,
    `${label('History')}keeps its last ${s.successful_jobs_history_limit} succeeded and ${s.failed_jobs_history_limit} failed or stopped jobs`,
  ];
  if (s.next_run_at !== null) {
    const cron = compileCron(s.cron, s.timezone);
    const next = [s.next_run_at];
    for (let i = 0; i < 2; i++) {
      const t = cron.nextAfter(next[next.length - 1] ?? s.next_run_at);
      if (t !== null) next.push(t);
    }
    lines.push(`${label('Next runs')}${next.map((t) => formatInZone(t, s.timezone)).join(', ')}`);
  }
  lines.push(`${label('Entrypoint')}${s.job.entrypoint}`);
  const wd = (s.job.runtime_env as { working_dir?: string } | undefined)?.working_dir;
  if (wd) lines.push(`${label('Working dir')}${wd} (packed when the schedule was saved)`);
  if (s.active_jobs.length) lines.push(`${label('Active')}${s.active_jobs.join(', ')}`);
  ctx.out.write(lines.join('\n') + '\n');
  const runs = await ctx.client.scheduleRuns(name, 5);
  if (runs.length) ctx.out.write('\n' + runsTable(c, runs));
  return EXIT.OK;
}

export async function runsCommand(ctx: CliContext, name: string, flags: { limit?: string; json?: boolean }): Promise<number> {
  const limit = Number(flags.limit ?? 20);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RaysubError('USAGE', '--limit must be a whole number from 1 to 1000');
  const runs = await ctx.client.scheduleRuns(name, limit);
  if (flags.json) json(ctx, { runs });
  else if (runs.length === 0) ctx.out.write(`Schedule '${name}' has not run yet.\n`);
  else ctx.out.write(runsTable(ctx.color, runs));
  return EXIT.OK;
}

export async function pauseCommand(ctx: CliContext, name: string, paused: boolean, flags: { json?: boolean }): Promise<number> {
  const s = await ctx.client.setSchedulePaused(name, paused);
  if (flags.json) json(ctx, s);
  else if (paused) ctx.err.write(`Schedule '${name}' paused.\n`);
  else ctx.err.write(`Schedule '${name}' resumed; next run ${s.next_run_at === null ? 'never' : `${formatInZone(s.next_run_at, s.timezone)} (${nextRun(s.next_run_at)})`}.\n`);
  return EXIT.OK;
}

export async function triggerCommand(ctx: CliContext, name: string, flags: { submissionId?: string; json?: boolean }): Promise<number> {
  // The id is chosen here, so a retried request returns the same run instead of starting two.
  const run = await ctx.client.triggerSchedule(name, flags.submissionId ?? `${name}-manual-${Date.now()}`);
  if (flags.json) json(ctx, run);
  if (run.action === 'started') {
    if (!flags.json) {
      ctx.err.write(`Schedule '${name}' triggered: job '${run.job_id}'${run.replaced.length ? ` (replaced ${run.replaced.join(', ')})` : ''}.\n`);
      ctx.out.write(`${run.job_id}\n`);
    }
    return EXIT.OK;
  }
  if (!flags.json) ctx.err.write(`raysub: error: schedule '${name}' did not start a job (${run.action}): ${run.detail ?? ''}\n`);
  return EXIT.REJECTED;
}

export async function deleteCommand(ctx: CliContext, name: string, flags: { json?: boolean }): Promise<number> {
  await ctx.client.deleteSchedule(name);
  if (flags.json) json(ctx, { name, deleted: true });
  else ctx.err.write(`Schedule '${name}' deleted (the jobs it fired are kept).\n`);
  return EXIT.OK;
}
