/**
 * Schedules as the API sees them: create (idempotent by definition), update, read, pause, resume,
 * trigger and delete, plus `fireDue`, which the ticker calls when a schedule's time has come.
 */
import { EventEmitter } from 'node:events';
import { compileCron, formatInZone } from '../../shared/cron.js';
import { RaysubError } from '../../shared/errors.js';
import { canonicalJson, sha256 } from '../../shared/ids.js';
import type { Logger } from '../../shared/log.js';
import {
  DEFAULT_FAILED_JOBS_HISTORY_LIMIT,
  DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT,
  parseRuntimeEnv,
  parseWith,
  scheduleCreateRequestSchema,
  scheduleTriggerRequestSchema,
  type RuntimeEnv,
  type ScheduleInfo,
  type ScheduleJob,
  type ScheduleRun,
} from '../../shared/protocol/index.js';
import type { Store } from '../db/index.js';
import type { Engine } from '../engine.js';
import { packageNameOf } from '../jobContext.js';
import type { JobService } from '../jobService.js';
import type { PackageStore } from '../packageStore.js';
import { fireRun } from './fire.js';
import { planDue } from './plan.js';
import { schedulesRepo, type ScheduleRow, type SchedulesRepo } from './store.js';

export interface ScheduleEvents {
  /** Something changed that can move the earliest due time (the ticker re-arms). */
  change: [];
}

export class ScheduleService extends EventEmitter<ScheduleEvents> {
  readonly repo: SchedulesRepo;

  constructor(
    private readonly engine: Engine,
    store: Store,
    private readonly jobs: JobService,
    private readonly packages: PackageStore,
    private readonly log: Logger,
  ) {
    super();
    this.repo = schedulesRepo(store.db);
  }

  /**
   * Create a schedule. The same name with the same definition returns the existing one (so
   * retries and re-runs of a deploy script are safe); a different definition is a 409 unless
   * `upsert`, which replaces the definition and keeps the history.
   */
  save(body: unknown, opts: { upsert: boolean; name?: string }): { schedule: ScheduleInfo; created: boolean } {
    const req = parseWith(scheduleCreateRequestSchema, body, 'INVALID_SCHEDULE');
    if (opts.name !== undefined && opts.name !== req.name) {
      throw new RaysubError('INVALID_SCHEDULE', `the body names schedule "${req.name}" but the path names "${opts.name}"`);
    }
    const timezone = req.timezone ?? 'UTC';
    const cron = compileCron(req.cron, timezone);
    const runtimeEnv = parseRuntimeEnv(req.job.runtime_env);
    this.checkPackages(runtimeEnv);
    const job: ScheduleJob = { ...req.job, runtime_env: runtimeEnv };
    const definition = {
      cron: cron.expression,
      timezone,
      concurrency: req.concurrency ?? 'allow',
      starting_deadline_s: req.starting_deadline_s ?? null,
      job,
    };
    const history = {
      successful_jobs_history_limit: req.successful_jobs_history_limit ?? DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT,
      failed_jobs_history_limit: req.failed_jobs_history_limit ?? DEFAULT_FAILED_JOBS_HISTORY_LIMIT,
    };
    // History limits other than the defaults are part of the definition; the defaults are left out
    // of the hash, so schedules saved before the limits existed keep their hash.
    const defaults = history.successful_jobs_history_limit === DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT && history.failed_jobs_history_limit === DEFAULT_FAILED_JOBS_HISTORY_LIMIT;
    const hash = sha256(canonicalJson(defaults ? definition : { ...definition, history }));
    const now = Date.now();
    const created = this.engine.transact(() => {
      const existing = this.repo.get(req.name);
      if (existing && existing.definition_hash === hash && (!opts.upsert || req.suspend === undefined)) return false;
      if (existing && !opts.upsert) {
        throw new RaysubError(
          'SCHEDULE_ALREADY_EXISTS',
          `a schedule named "${req.name}" already exists with a different definition; use \`raysub schedule create --update\` to replace it`,
        );
      }
      const suspended = req.suspend ?? (existing ? existing.suspended === 1 : false);
      // An unchanged expression keeps its due time, so re-deploying never shifts or repeats a run.
      const keepNext = existing && existing.cron === definition.cron && existing.timezone === timezone && !suspended && existing.next_run_at !== null;
      const row = {
        name: req.name,
        ...definition,
        ...history,
        job: JSON.stringify(job),
        suspended: suspended ? 1 : 0,
        definition_hash: hash,
        updated_at: now,
        next_run_at: suspended ? null : keepNext ? existing.next_run_at : cron.nextAfter(now),
      };
      if (existing) this.repo.replace(row);
      else this.repo.insert({ ...row, created_at: now });
      return !existing;
    });
    this.emit('change');
    return { schedule: this.get(req.name), created };
  }

  private checkPackages(env: RuntimeEnv): void {
    for (const uri of [env.working_dir, ...(env.py_modules ?? [])]) {
      if (!uri) continue;
      const name = packageNameOf(uri);
      if (!name) throw new RaysubError('INVALID_RUNTIME_ENV', `"${uri}" is not a package URI the head can serve; upload it with \`raysub schedule create --working-dir\``);
      if (!this.packages.has(name)) throw new RaysubError('INVALID_RUNTIME_ENV', `package ${uri} was not uploaded to this head`);
    }
  }

  private row(name: string): ScheduleRow {
    const row = this.repo.get(name);
    if (!row) throw new RaysubError('SCHEDULE_NOT_FOUND', `no schedule named "${name}"`);
    return row;
  }

  private view(row: ScheduleRow): ScheduleInfo {
    return {
      name: row.name,
      cron: row.cron,
      timezone: row.timezone,
      concurrency: row.concurrency,
      starting_deadline_s: row.starting_deadline_s,
      suspended: row.suspended === 1,
      created_at: row.created_at,
      updated_at: row.updated_at,
      next_run_at: row.suspended === 1 ? null : row.next_run_at,
      last_run: this.repo.lastRun(row.name),
      active_jobs: this.repo.activeJobs(row.name).map((j) => j.id),
      successful_jobs_history_limit: row.successful_jobs_history_limit,
      failed_jobs_history_limit: row.failed_jobs_history_limit,
      job: JSON.parse(row.job) as ScheduleJob,
    };
  }

  get(name: string): ScheduleInfo {
    return this.view(this.row(name));
  }

  list(): ScheduleInfo[] {
    return this.repo.all().map((r) => this.view(r));
  }

  runs(name: string, limit: number): ScheduleRun[] {
    this.row(name);
    return this.repo.runs(name, limit);
  }

  /** Pause: no run fires until resumed. Idempotent. */
  pause(name: string): ScheduleInfo {
    this.engine.transact(() => {
      if (this.row(name).suspended === 0) this.repo.setState(name, true, null, Date.now());
    });
    this.emit('change');
    return this.get(name);
  }

  /** Resume from now on: due times that passed while paused are not caught up. Idempotent. */
  resume(name: string): ScheduleInfo {
    this.engine.transact(() => {
      const row = this.row(name);
      if (row.suspended === 0) return;
      const now = Date.now();
      this.repo.setState(name, false, compileCron(row.cron, row.timezone).nextAfter(now), now);
    });
    this.emit('change');
    return this.get(name);
  }

  /** Run it now (paused or not), under its concurrency policy; the due times are unchanged. */
  trigger(name: string, body: unknown): ScheduleRun {
    const req = parseWith(scheduleTriggerRequestSchema, body ?? {});
    const row = this.row(name);
    if (req.submission_id) {
      const earlier = this.repo.runByJob(name, req.submission_id);
      if (earlier) return earlier;
    }
    const now = Date.now();
    const seq = this.engine.transact(() => fireRun(this.repo, this.jobs, { row, scheduledAt: now, trigger: 'manual', now, submissionId: req.submission_id }));
    return this.runBySeq(name, seq);
  }

  private runBySeq(name: string, seq: number): ScheduleRun {
    const run = this.repo.runs(name, 20).find((r) => r.seq === seq);
    if (!run) throw new RaysubError('INTERNAL', `run ${seq} of schedule ${name} vanished`);
    return run;
  }

  /** Delete the schedule and its run history; the jobs it fired stay (delete them as jobs). */
  delete(name: string): void {
    this.engine.transact(() => {
      if (!this.repo.remove(name)) throw new RaysubError('SCHEDULE_NOT_FOUND', `no schedule named "${name}"`);
    });
    this.emit('change');
  }

  /**
   * Fire what is due for one schedule: at most one run (see planDue), the missed ones recorded
   * as one history entry, and the next due time, all in one transaction.
   */
  fireDue(row: ScheduleRow, now: number, startedAt: number): void {
    if (row.next_run_at === null) return;
    const cron = compileCron(row.cron, row.timezone);
    const plan = planDue(cron, row.next_run_at, now, row.starting_deadline_s, startedAt);
    this.engine.transact(() => {
      if (plan.missed) {
        const m = plan.missed;
        const why = plan.fire ? 'at most one catch-up run is started' : `more than the starting deadline (${row.starting_deadline_s}s) late`;
        this.repo.insertRun({
          schedule: row.name,
          scheduled_at: m.first,
          fired_at: now,
          trigger_kind: 'cron',
          action: 'missed',
          job_id: null,
          replaced: '[]',
          detail: `${m.count}${m.capped ? '+' : ''} run${m.count === 1 ? '' : 's'} due from ${formatInZone(m.first, row.timezone)} to ${formatInZone(m.last, row.timezone)} not started: ${why}`,
        });
      }
      if (plan.fire) fireRun(this.repo, this.jobs, { row, scheduledAt: plan.fire.scheduledAt, trigger: plan.fire.trigger, now });
      this.repo.setNext(row.name, plan.nextRunAt);
    });
    // On-time fires are routine; catch-ups and missed runs are worth an operator's attention.
    const routine = plan.fire?.trigger === 'cron' && !plan.missed;
    this.log[routine ? 'debug' : 'info']({ schedule: row.name, fire: plan.fire, missed: plan.missed?.count ?? 0, nextRunAt: plan.nextRunAt }, 'schedule due');
  }
}
