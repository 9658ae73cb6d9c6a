/** A plain-text table: columns padded to their widest cell, no escape codes unless cells carry them. */
const ANSI = /\u001b\[[0-9;]*m/g;

function width(s: string): number {
  return s.replace(ANSI, '').length;
}

/**
 * Render rows under headers. With `maxWidth` (a terminal's columns), the last column is cut so a
 * row never wraps; it holds free text (a message, a reason) where the end matters least.
 */
export function renderTable(headers: string[], rows: string[][], maxWidth?: number): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const lastStart = widths.slice(0, -1).reduce((sum, w) => sum + w + 2, 0);
  const room = maxWidth ? Math.max(20, maxWidth - lastStart - 1) : Infinity;
  const fit = (c: string) => (width(c) <= room ? c : truncate(c.replace(ANSI, ''), room));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? fit(c) : c + ' '.repeat((widths[i] ?? 0) - width(c))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function truncate(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : flat.slice(0, max - 1) + '…';
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
