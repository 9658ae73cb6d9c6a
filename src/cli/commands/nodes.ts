import { RaysubError } from '../../shared/errors.js';
import type { NodeInfo } from '../../shared/protocol/index.js';
import { formatBytes } from '../../shared/resources.js';
import { sleep } from '../../shared/abort.js';
import { statusColor } from '../../ui/color.js';
import { nodeStateLabel } from '../../ui/status/model.js';
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
  // A node that is not alive holds nothing: its use is "-", never a full node.
  const used = (n: NodeInfo, u: string): string => (n.state === 'ALIVE' || n.state === 'DRAINING' ? u : '-');
  const rows = nodes.map((n) => [
    n.node_name,
    statusColor(ctx.color, nodeStateLabel(n)),
    `${used(n, String(n.totals.num_cpus - n.free.num_cpus))}/${n.totals.num_cpus}`,
    `${used(n, String(n.totals.num_gpus - n.gpu_free.filter((g) => g === 1).length))}/${n.totals.num_gpus}`,
    `${used(n, formatBytes(n.totals.memory - n.free.memory))}/${formatBytes(n.totals.memory)}`,
    String(n.running_tasks),
    n.sandbox.mode + (n.sandbox.cgroups ? '+cgroups' : ''),
    // Which limits the node enforces ("?": an agent too old to say).
    n.sandbox.limits ? n.sandbox.limits.join(',') || 'none' : '?',
    formatAge(now - n.last_seen_at) + ' ago',
  ]);
  ctx.out.write(renderTable(['NODE', 'STATE', 'CPUS', 'GPUS', 'MEMORY', 'TASKS', 'SANDBOX', 'LIMITS', 'SEEN'], rows));
  // A node that isolates or limits its workers less than it could says why.
  for (const n of nodes) {
    if (n.state === 'ALIVE' || n.state === 'DRAINING') {
      if (n.sandbox.mode !== 'bwrap' || !n.sandbox.cgroups) ctx.out.write(`${n.node_name}: ${n.sandbox.detail}\n`);
      // Unhealthy: it takes no new work until its agent's probe of its work dir passes again.
      if (n.unhealthy) ctx.out.write(`${n.node_name}: unhealthy (noticed ${formatAge(now - n.unhealthy.since)} ago), takes no new work: ${n.unhealthy.reason}\n`);
    }
  }
  if (nodes.some((n) => n.state === 'LOST')) ctx.err.write('LOST nodes are forgotten a day after they were last seen (now: raysub node forget NAME).\n');
  return EXIT.OK;
}

export type NodeVerb = 'cordon' | 'uncordon' | 'drain' | 'forget';

export interface NodeControlFlags {
  json?: boolean;
  wait?: boolean;
  timeout?: string;
}

/**
 * `raysub node cordon|uncordon|drain|forget NAME`. Drain is a cordon that then waits until the
 * node runs nothing (its agent can then be stopped), as `kubectl drain` waits for its pods.
 */
export async function nodeControlCommand(ctx: CliContext, verb: NodeVerb, name: string, flags: NodeControlFlags): Promise<number> {
  let timeoutMs = Infinity;
  if (flags.timeout !== undefined) {
    const s = Number(flags.timeout);
    if (!Number.isFinite(s) || s < 0) throw new RaysubError('USAGE', `--timeout must be seconds >= 0, got "${flags.timeout}"`);
    timeoutMs = s * 1000;
  }
  if (verb === 'forget') {
    const r = await ctx.client.forgetNode(name);
    if (flags.json) ctx.out.write(JSON.stringify(r) + '\n');
    else ctx.err.write(`Node ${name} forgotten (${r.forgotten ?? 0} lost registration${r.forgotten === 1 ? '' : 's'}).\n`);
    return EXIT.OK;
  }
  const r = await ctx.client.setNodeCordon(name, verb !== 'uncordon');
  if (verb !== 'drain' || flags.wait === false) {
    if (flags.json) ctx.out.write(JSON.stringify(r) + '\n');
    else if (verb === 'uncordon') ctx.err.write(`Node ${name} takes work again.\n`);
    else ctx.err.write(`Node ${name} is cordoned: it takes no new work; the ${r.running_tasks} task${r.running_tasks === 1 ? '' : 's'} running there finish.\n`);
    return EXIT.OK;
  }
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const node = (await ctx.client.nodes()).find((n) => n.node_name === name);
    const running = node && (node.state === 'ALIVE' || node.state === 'DRAINING') ? node.running_tasks : 0;
    if (running === 0) break;
    if (running !== last && !flags.json) ctx.err.write(`Draining ${name}: ${running} task${running === 1 ? '' : 's'} still running...\n`);
    last = running;
    if (Date.now() >= deadline) {
      if (flags.json) ctx.out.write(JSON.stringify({ ...r, running_tasks: running }) + '\n');
      else ctx.err.write(`Node ${name} still runs ${running} task${running === 1 ? '' : 's'} after --timeout; it stays cordoned.\n`);
      return EXIT.WAIT_TIMEOUT;
    }
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
  }
  if (flags.json) ctx.out.write(JSON.stringify({ ...r, running_tasks: 0 }) + '\n');
  else ctx.err.write(`Node ${name} is drained: it runs nothing and takes no new work; its agent can be stopped (raysub node uncordon ${name} to give it work again).\n`);
  return EXIT.OK;
}
