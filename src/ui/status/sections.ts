/**
 * The dashboard's sections as titled text tables. The plain view prints them one after another;
 * the ink view lays the same sections out and refreshes them.
 */
import { formatBytes } from '../../shared/resources.js';
import { statusColor, type Palette } from '../color.js';
import { formatAge, renderTable, truncate } from '../table.js';
import type { StatusView, Use } from './model.js';

export interface Section {
  title: string;
  body: string;
}

export interface SectionOptions {
  /** Draw usage bars beside node resources (the live view). */
  bars?: boolean;
  /** Rows per job list. */
  maxRows?: number;
}

function bar(u: Use, cells = 10): string {
  const frac = u.total > 0 ? Math.min(1, u.used / u.total) : 0;
  const filled = Math.round(frac * cells);
  return '█'.repeat(filled) + '░'.repeat(cells - filled) + ' ';
}

function use(u: Use, fmt: (n: number) => string, bars: boolean): string {
  return `${bars ? bar(u) : ''}${fmt(u.used)}/${fmt(u.total)}`;
}

const num = (n: number) => String(Math.round(n * 100) / 100);

function limited<T>(items: T[], max: number, render: (rows: T[]) => string, what: string): string {
  if (items.length === 0) return `no ${what}\n`;
  const more = items.length > max ? `… and ${items.length - max} more\n` : '';
  return render(items.slice(0, max)) + more;
}

function when(ms: number | null, now: number): string {
  if (ms === null) return '-';
  return ms >= now ? `in ${formatAge(ms - now)}` : `${formatAge(now - ms)} ago`;
}

export function statusSections(v: StatusView, c: Palette, opts: SectionOptions = {}): Section[] {
  const max = opts.maxRows ?? 10;
  const bars = Boolean(opts.bars);
  const nodes = limited(
    v.nodes,
    50,
    (rows) =>
      renderTable(
        ['NODE', 'STATE', 'CPU', 'GPU', 'MEMORY', 'TASKS', 'SANDBOX'],
        rows.map((n) => [n.name, statusColor(c, n.state), use(n.cpus, num, bars), use(n.gpus, num, bars), use(n.memory, formatBytes, bars), String(n.running_tasks), n.sandbox]),
      ),
    'nodes',
  );
  const running = limited(
    v.running,
    max,
    (rows) =>
      renderTable(
        ['JOB', 'AGE', 'TASKS', 'SCHEDULE', 'ENTRYPOINT'],
        rows.map((j) => [j.submission_id, formatAge(j.age_s * 1000), String(j.tasks), j.schedule ?? '-', truncate(j.entrypoint, 40)]),
      ),
    'running jobs',
  );
  const pending = limited(
    v.pending,
    max,
    (rows) =>
      renderTable(
        ['JOB', 'WAITING', 'POSITION', 'REASON'],
        rows.map((j) => [j.submission_id, formatAge(j.age_s * 1000), j.position === null ? '-' : String(j.position), truncate(j.reason, 60)]),
      ),
    'pending jobs',
  );
  const failures = limited(
    v.recent_failures,
    5,
    (rows) =>
      renderTable(
        ['JOB', 'ENDED', 'ERROR', 'EXIT', 'MESSAGE'],
        rows.map((j) => [j.submission_id, when(j.ended_at, v.time), c.red(j.error_type ?? 'FAILED'), j.exit_code === null ? '-' : String(j.exit_code), truncate(j.message, 50)]),
      ),
    'recent failures',
  );
  const schedules = limited(
    v.schedules,
    5,
    (rows) =>
      renderTable(
        ['SCHEDULE', 'NEXT RUN', 'CRON', 'LAST STATUS', 'ACTIVE'],
        rows.map((s) => [
          s.name,
          s.suspended ? c.yellow('paused') : when(s.next_run_at, v.time),
          `${s.cron} (${s.timezone})`,
          s.last_status ? statusColor(c, s.last_status) : '-',
          String(s.active_jobs),
        ]),
      ),
    'schedules',
  );
  return [
    { title: `Nodes (${v.nodes.length})`, body: nodes },
    { title: `Running (${v.running.length})`, body: running },
    { title: `Pending (${v.pending.length})`, body: pending },
    { title: 'Recent failures', body: failures },
    { title: 'Schedules due next', body: schedules },
  ];
}

/** The whole dashboard as plain text (no escape codes unless the palette has colour on). */
export function renderStatusText(v: StatusView, c: Palette): string {
  const when = new Date(v.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const parts = [`${c.bold('raysub status')}  ${v.address}  ${when}\n`];
  for (const s of statusSections(v, c)) parts.push(`\n${c.bold(s.title)}\n${s.body}`);
  return parts.join('');
}
