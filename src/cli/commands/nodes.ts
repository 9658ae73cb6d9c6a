import { formatBytes } from '../../shared/resources.js';
import { statusColor } from '../../ui/color.js';
import { formatAge, renderTable } from '../../ui/table.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';

export async function nodesCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const nodes = await ctx.client.nodes();
  if (flags.json) {
    ctx.out.write(JSON.stringify({ nodes }, null, 2) + '\n');
    return EXIT.OK;
  }
  if (nodes.length === 0) {
    ctx.out.write('No nodes registered.\n');
    return EXIT.OK;
  }
  const now = Date.now();
  const rows = nodes.map((n) => [
    n.node_name,
    statusColor(ctx.color, n.state),
    `${n.totals.num_cpus - n.free.num_cpus}/${n.totals.num_cpus}`,
    `${n.totals.num_gpus - n.gpu_free.filter((g) => g === 1).length}/${n.totals.num_gpus}`,
    `${formatBytes(n.totals.memory - n.free.memory)}/${formatBytes(n.totals.memory)}`,
    String(n.running_tasks),
    n.sandbox.mode + (n.sandbox.cgroups ? '+cgroups' : ''),
    // Which limits the node enforces ("?": an agent too old to say).
    n.sandbox.limits ? n.sandbox.limits.join(',') || 'none' : '?',
    formatAge(now - n.last_seen_at) + ' ago',
  ]);
  ctx.out.write(renderTable(['NODE', 'STATE', 'CPUS', 'GPUS', 'MEMORY', 'TASKS', 'SANDBOX', 'LIMITS', 'SEEN'], rows));
  // A node that isolates or limits its workers less than it could says why.
  for (const n of nodes) {
    if (n.state !== 'GONE' && (n.sandbox.mode !== 'bwrap' || !n.sandbox.cgroups)) ctx.out.write(`${n.node_name}: ${n.sandbox.detail}\n`);
  }
  return EXIT.OK;
}
