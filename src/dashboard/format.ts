/** How the page shows times, durations, sizes and resources. */

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function formatAgo(t: number | null, now = Date.now()): string {
  if (t === null) return '—';
  const d = now - t;
  return d < 0 ? `in ${formatDuration(-d)}` : `${formatDuration(d)} ago`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** Local time: "14:03:07" today, "Dec 4 14:03" otherwise. */
export function formatTime(t: number | null, now = Date.now()): string {
  if (t === null) return '—';
  const d = new Date(t);
  const today = new Date(now);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return hms;
  return `${d.toLocaleString('en', { month: 'short' })} ${d.getDate()} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function isoTime(t: number | null): string | undefined {
  return t === null ? undefined : new Date(t).toISOString();
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function formatNumber(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString('en') : n.toFixed(2).replace(/\.?0+$/, '');
}

/** A task's request as a short line: "2 CPU · 1 GPU · 4 GiB · tpu 1". */
export function formatResources(r: { entrypoint_num_cpus: number; entrypoint_num_gpus: number; entrypoint_memory: number; entrypoint_resources: Record<string, number> }): string {
  const parts: string[] = [`${formatNumber(r.entrypoint_num_cpus)} CPU`];
  if (r.entrypoint_num_gpus) parts.push(`${formatNumber(r.entrypoint_num_gpus)} GPU`);
  if (r.entrypoint_memory) parts.push(formatBytes(r.entrypoint_memory));
  for (const [k, v] of Object.entries(r.entrypoint_resources)) parts.push(`${k} ${formatNumber(v)}`);
  return parts.join(' · ');
}
