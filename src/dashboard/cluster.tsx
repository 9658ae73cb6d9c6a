import type { ClusterHistoryResponse, ClusterSample } from '../shared/protocol/index.js';
import { getJson } from './api.js';
import { formatNumber } from './format.js';
import { usePoll } from './live.js';

const W = 600;
const H = 160;
const PAD = { left: 40, right: 8, top: 8, bottom: 20 };

interface Series {
  name: string;
  cls: string;
  points: [number, number][];
}

/** A line chart in SVG; its caption says the latest figures in words. */
function Chart({ title, series, unit, max }: { title: string; series: Series[]; unit: string; max?: number }) {
  const all = series.flatMap((s) => s.points);
  if (Math.max(0, ...series.map((s) => s.points.length)) < 2) {
    return (
      <figure class="chart">
        <figcaption>{title}</figcaption>
        <p class="muted">Not enough samples yet: the head samples every few seconds.</p>
      </figure>
    );
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(max ?? 0, ...all.map((p) => p[1]), 1);
  const x = (t: number): number => PAD.left + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v: number): number => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const last = (s: Series): number => s.points[s.points.length - 1]?.[1] ?? 0;
  const minutes = Math.round((t1 - t0) / 60_000);
  return (
    <figure class="chart">
      <figcaption>
        {title}:{' '}
        {series.map((s, i) => (
          <span key={s.name} class={`key ${s.cls}`}>
            {i > 0 && ', '}
            {s.name} {formatNumber(Math.round(last(s) * 100) / 100)}
            {unit}
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title} over the last ${minutes} minutes`} preserveAspectRatio="none">
        <line class="axis" x1={PAD.left} y1={y(0)} x2={W - PAD.right} y2={y(0)} />
        <line class="grid" x1={PAD.left} y1={y(top)} x2={W - PAD.right} y2={y(top)} />
        <text class="tick" x={PAD.left - 4} y={y(top) + 4} text-anchor="end">
          {formatNumber(Math.round(top * 100) / 100)}
        </text>
        <text class="tick" x={PAD.left - 4} y={y(0)} text-anchor="end">
          0
        </text>
        <text class="tick" x={PAD.left} y={H - 4}>
          {minutes} min ago
        </text>
        <text class="tick" x={W - PAD.right} y={H - 4} text-anchor="end">
          now
        </text>
        {series.map((s) => (
          <polyline key={s.name} class={`series ${s.cls}`} points={s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
    </figure>
  );
}

/** Jobs finished per minute between consecutive samples. */
function throughput(samples: ClusterSample[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as ClusterSample;
    const b = samples[i] as ClusterSample;
    const minutes = (b.t - a.t) / 60_000;
    if (minutes > 0) out.push([b.t, Math.max(0, b.finished - a.finished) / minutes]);
  }
  return out;
}

const pct = (used: number, total: number): number => (total > 0 ? (100 * used) / total : 0);

export function ClusterPage() {
  const { data, error } = usePoll((signal) => getJson<ClusterHistoryResponse>('/api/cluster/history', signal), 10_000);
  const s = data?.samples ?? [];
  const hasGpus = s.some((x) => x.gpus > 0);
  return (
    <section aria-labelledby="cluster-title">
      <h1 id="cluster-title">Cluster</h1>
      <p class="muted">The last hour, as this head has seen it since it started.</p>
      {error && (
        <p class="error" role="alert">
          Could not load the cluster's history: {error}
        </p>
      )}
      {!data && !error && <p role="status">Loading…</p>}
      {data && (
        <div class="charts">
          <Chart
            title="Jobs"
            unit=""
            series={[
              { name: 'running', cls: 'c1', points: s.map((x) => [x.t, x.running]) },
              { name: 'pending', cls: 'c2', points: s.map((x) => [x.t, x.pending]) },
            ]}
          />
          <Chart title="Throughput" unit=" jobs/min" series={[{ name: 'finished', cls: 'c3', points: throughput(s) }]} />
          <Chart
            title="Utilisation"
            unit="%"
            max={100}
            series={[
              { name: 'CPU', cls: 'c1', points: s.map((x) => [x.t, pct(x.cpus_used, x.cpus)]) },
              { name: 'memory', cls: 'c2', points: s.map((x) => [x.t, pct(x.memory_used, x.memory)]) },
              ...(hasGpus ? [{ name: 'GPU', cls: 'c3', points: s.map((x): [number, number] => [x.t, pct(x.gpus_used, x.gpus)]) }] : []),
            ]}
          />
        </div>
      )}
    </section>
  );
}
