import type { NodeInfo } from '../shared/protocol/index.js';
import { getJson } from './api.js';
import { formatAgo, formatBytes, formatNumber } from './format.js';
import { useNow, usePoll } from './live.js';
import { StatusBadge } from './status.js';

/** Used against total, as a bar with its figures in words (the bar is never the only way to read it). */
export function Meter({ label, used, total, format = formatNumber }: { label: string; used: number; total: number; format?: (n: number) => string }) {
  const pct = total > 0 ? Math.min(100, Math.max(0, (used / total) * 100)) : 0;
  const text = `${format(used)} of ${format(total)}`;
  return (
    <div class="meter">
      <span class="meter-label">{label}</span>
      <span class="meter-bar" role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={total} aria-valuenow={used} aria-valuetext={text}>
        <span class={`meter-fill${pct >= 90 ? ' high' : ''}`} style={{ width: `${pct}%` }} />
      </span>
      <span class="meter-text">{text}</span>
    </div>
  );
}

function NodeCard({ node, now }: { node: NodeInfo; now: number }) {
  const t = node.totals;
  const f = node.free;
  const custom = Object.entries(t.resources);
  return (
    <li class={`node n-${node.state.toLowerCase()}`}>
      <div class="section-head">
        <h3>{node.node_name}</h3>
        <StatusBadge status={node.state} />
      </div>
      <p class="muted">
        {node.hostname} · sandbox <strong>{node.sandbox.mode}</strong>
        {node.sandbox.cgroups ? ' with cgroups' : ''} · {node.running_tasks} running task{node.running_tasks === 1 ? '' : 's'} · seen {formatAgo(node.last_seen_at, now)}
      </p>
      {node.unhealthy && (node.state === 'ALIVE' || node.state === 'DRAINING') && (
        <p class="error">
          Unhealthy, takes no new work (noticed {formatAgo(node.unhealthy.since, now)}): {node.unhealthy.reason}
        </p>
      )}
      {node.state === 'ALIVE' || node.state === 'DRAINING' ? (
        <>
          <Meter label="CPUs" used={t.num_cpus - f.num_cpus} total={t.num_cpus} />
          {t.num_gpus > 0 && <Meter label="GPUs" used={t.num_gpus - node.gpu_free.reduce((a, b) => a + b, 0)} total={t.num_gpus} />}
          <Meter label="Memory" used={t.memory - f.memory} total={t.memory} format={formatBytes} />
          {custom.map(([k, v]) => (
            <Meter key={k} label={k} used={v - (f.resources[k] ?? 0)} total={v} />
          ))}
        </>
      ) : (
        <p>Not reachable: its tasks were settled or moved.</p>
      )}
      {node.sandbox.detail && <p class="muted small">{node.sandbox.detail}</p>}
    </li>
  );
}

export function NodesPage() {
  const now = useNow(5000);
  const { data, error } = usePoll((signal) => getJson<{ nodes: NodeInfo[] }>('/api/nodes', signal), 2000);
  const nodes = data?.nodes ?? [];
  const serving = nodes.filter((n) => n.state === 'ALIVE');
  const draining = nodes.filter((n) => n.state === 'DRAINING');
  const lost = nodes.filter((n) => n.state !== 'ALIVE' && n.state !== 'DRAINING');
  const group = (title: string, list: NodeInfo[], id: string) =>
    list.length > 0 && (
      <section aria-labelledby={id}>
        <h2 id={id}>
          {title} <span class="count">{list.length}</span>
        </h2>
        <ul class="nodes">
          {list.map((n) => (
            <NodeCard key={n.node_id} node={n} now={now} />
          ))}
        </ul>
      </section>
    );
  return (
    <section aria-labelledby="nodes-title">
      <h1 id="nodes-title">Nodes</h1>
      {error && (
        <p class="error" role="alert">
          Could not load the nodes: {error}
        </p>
      )}
      {!data && !error && <p role="status">Loading nodes…</p>}
      {data && nodes.length === 0 && <p>No node has joined yet.</p>}
      {group('Serving', serving, 'nodes-alive')}
      {group('Draining', draining, 'nodes-draining')}
      {group('Lost', lost, 'nodes-lost')}
    </section>
  );
}
