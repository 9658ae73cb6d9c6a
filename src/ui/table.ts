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
  const start = (): number => widths.slice(0, -1).reduce((sum, w) => sum + w + 2, 0);
  if (maxWidth) {
    // Too wide for the last column's 20: narrow the widest of the others, none below its header or 8.
    const floor = headers.map((h) => Math.max(8, width(h)));
    for (let over = start() + 21 - maxWidth; over > 0; over--) {
      let widest = -1;
      for (let i = 0; i < widths.length - 1; i++) if ((widths[i] ?? 0) > (floor[i] ?? 0) && (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))) widest = i;
      if (widest < 0) break;
      widths[widest] = (widths[widest] ?? 0) - 1;
    }
  }
  const lastStart = start();
  const room = maxWidth ? Math.max(20, maxWidth - lastStart - 1) : Infinity;
  const fitTo = (c: string, w: number) => (width(c) <= w ? c : truncate(c.replace(ANSI, ''), w));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => {
        if (i === cells.length - 1) return fitTo(c, room);
        const cell = fitTo(c, widths[i] ?? 0);
        return cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - width(cell)));
      })
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
