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
  /** Columns to fit every line in (the terminal's width). */
  width?: number;
  /** Lines the sections may take together (the terminal's height less the header). */
  height?: number;
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
  if (items.length === 0) return `${what}\n`;
  const more = items.length > max ? `… and ${items.length - max} more\n` : '';
  return render(items.slice(0, max)) + more;
}

function when(ms: number | null, now: number): string {
  if (ms === null) return '-';
  return ms >= now ? `in ${formatAge(ms - now)}` : `${formatAge(now - ms)} ago`;
}

interface Part<T> {
  title: string;
  items: T[];
  /** Rows when nothing limits the height. */
  max: number;
  /** Who gets rows first when the terminal is short (lower first). */
  priority: number;
  render: (rows: T[]) => string;
  /** Said instead of a table when there is nothing. */
  none: string;
}

/** Cut each line to `width` columns (colour codes kept out of the count). */
function fitWidth(text: string, width: number | undefined): string {
  if (!width) return text;
  return text
    .split('\n')
    .map((l) => (l.replace(ANSI, '').length <= width ? l : truncate(l.replace(ANSI, ''), width)))
    .join('\n');
}

const ANSI = /\u001b\[[0-9;]*m/g;

/**
 * The sections, in the order they are drawn. With `height` (the live view on a terminal) the
 * whole fits in that many lines: sections with nothing collapse into one line at the end, and
 * rows go first to running, pending and failed jobs; a section that gets no room says how many it
 * holds in that line. With `width`, every line is cut to it (narrow terminals also lose the bars).
 */
export function statusSections(v: StatusView, c: Palette, opts: SectionOptions = {}): Section[] {
  const max = opts.maxRows ?? 10;
  const width = opts.width;
  const bars = Boolean(opts.bars) && (width === undefined || width >= 100);
  const parts: Part<unknown>[] = [
    {
      title: `Nodes (${v.nodes.length})`,
      items: v.nodes,
      max: 50,
      priority: 3,
      none: 'no nodes',
      render: (rows) => {
        const nodes = rows as StatusView['nodes'];
        // Why a node takes no work, in a column of its own only when one has a reason.
        const why = nodes.some((n) => n.reason !== null);
        return renderTable(
          ['NODE', 'STATE', 'CPU', 'GPU', 'MEMORY', 'TASKS', 'SANDBOX', ...(why ? ['REASON'] : [])],
          nodes.map((n) => [n.name, statusColor(c, n.state), use(n.cpus, num, bars), use(n.gpus, num, bars), use(n.memory, formatBytes, bars), String(n.running_tasks), n.sandbox, ...(why ? [n.reason ?? '-'] : [])]),
        );
      },
    },
    {
      title: `Running (${v.running.length})`,
      items: v.running,
      max,
      priority: 0,
      none: 'no running jobs',
      render: (rows) =>
        renderTable(
          ['JOB', 'AGE', 'TASKS', 'SCHEDULE', 'ENTRYPOINT'],
          (rows as StatusView['running']).map((j) => [j.submission_id, formatAge(j.age_s * 1000), j.progress, j.schedule ?? '-', truncate(j.entrypoint, 40)]),
          width,
        ),
    },
    {
      title: `Pending (${v.pending.length})`,
      items: v.pending,
      max,
      priority: 1,
      none: 'no pending jobs',
      render: (rows) =>
        renderTable(
          ['JOB', 'WAITING', 'POSITION', 'REASON'],
          (rows as StatusView['pending']).map((j) => [j.submission_id, formatAge(j.age_s * 1000), j.position === null ? '-' : String(j.position), truncate(j.reason, 60)]),
          width,
        ),
    },
    {
      title: 'Recent failures',
      items: v.recent_failures,
      max: 5,
      priority: 2,
      none: 'no recent failures',
      render: (rows) =>
        renderTable(
          ['JOB', 'ENDED', 'ERROR', 'EXIT', 'MESSAGE'],
          (rows as StatusView['recent_failures']).map((j) => [j.submission_id, when(j.ended_at, v.time), c.red(j.error_type ?? 'FAILED'), j.exit_code === null ? '-' : String(j.exit_code), truncate(j.message, 50)]),
          width,
        ),
    },
    {
      title: 'Recent successes',
      items: v.recent_successes,
      max: 5,
      priority: 4,
      none: 'no recent successes',
      render: (rows) =>
        renderTable(
          ['JOB', 'ENDED', 'TOOK', 'TASKS', 'ENTRYPOINT'],
          (rows as StatusView['recent_successes']).map((j) => [j.submission_id, when(j.ended_at, v.time), j.duration_s === null ? '-' : formatAge(j.duration_s * 1000), String(j.tasks), truncate(j.entrypoint, 40)]),
          width,
        ),
    },
    {
      title: 'Schedules due next',
      items: v.schedules,
      max: 5,
      priority: 5,
      none: 'no schedules',
      render: (rows) =>
        renderTable(
          ['SCHEDULE', 'NEXT RUN', 'CRON', 'LAST STATUS', 'ACTIVE'],
          (rows as StatusView['schedules']).map((s) => [
            s.name,
            s.suspended ? c.yellow('paused') : when(s.next_run_at, v.time),
            `${s.cron} (${s.timezone})`,
            s.last_status ? statusColor(c, s.last_status) : '-',
            String(s.active_jobs),
          ]),
          width,
        ),
    },
  ];
  const full = parts.map((p) => ({ title: p.title, body: fitWidth(limited(p.items, p.max, p.render, p.none), width) }));
  const lines = full.reduce((n, p) => n + 2 + p.body.trimEnd().split('\n').length, 0);
  if (opts.height === undefined || lines <= opts.height) return full;
  // A section drawn costs a blank line, its title and its table's header, plus its rows, plus a
  // "… and N more" line when cut; the collapsed line at the end costs a blank line and itself.
  const cost = (p: Part<unknown>, n: number): number => 3 + n + (n < p.items.length ? 1 : 0);
  const rows = new Map<Part<unknown>, number>();
  let left = opts.height - 2;
  const byPriority = parts.filter((p) => p.items.length > 0).sort((a, b) => a.priority - b.priority);
  for (const p of byPriority) {
    if (cost(p, 1) > left) continue;
    rows.set(p, 1);
    left -= cost(p, 1);
  }
  for (const p of byPriority) {
    let n = rows.get(p);
    if (n === undefined) continue;
    while (n < Math.min(p.items.length, p.max) && cost(p, n + 1) - cost(p, n) <= left) {
      left -= cost(p, n + 1) - cost(p, n);
      n++;
    }
    rows.set(p, n);
  }
  const out: Section[] = [];
  for (const p of parts) {
    const n = rows.get(p);
    if (n === undefined) continue;
    const more = p.items.length > n ? `… and ${p.items.length - n} more\n` : '';
    out.push({ title: p.title, body: fitWidth(p.render(p.items.slice(0, n)) + more, width) });
  }
  const collapsed = parts.filter((p) => !rows.has(p)).map((p) => (p.items.length === 0 ? p.none : `${p.title.replace(/ \(\d+\)$/, '')}: ${p.items.length} (no room)`));
  if (collapsed.length) out.push({ title: '', body: fitWidth(collapsed.join(' · '), width) });
  return out;
}

/** The whole dashboard as plain text (no escape codes unless the palette has colour on). */
export function renderStatusText(v: StatusView, c: Palette): string {
  const when = new Date(v.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const parts = [`${c.bold('raysub status')}  ${v.address}  ${when}\n`];
  for (const s of statusSections(v, c)) parts.push(`\n${s.title ? `${c.bold(s.title)}\n` : ''}${s.body}`);
  return parts.join('');
}
