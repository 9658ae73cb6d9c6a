/**
 * What the head tells agents (and, through them, jobs) about its nodes for in-job work, and the
 * check that its view of each node adds up.
 */
import type { InjobAnswer, Usage } from '../shared/protocol/index.js';
import { applyPlacement, capacityDiff, cloneCapacity } from '../shared/resources.js';
import { applyUsage, type LiveView } from './state.js';

/**
 * A node's invariant on the head: free + held == total, where held is what its job tasks ask
 * for, the in-job usage its agent last reported, and in-job tasks and placement group bundles
 * placed on it that it has not taken in yet. Null when it holds, else what differs.
 */
export function nodeImbalance(view: LiveView, nodeId: string): string | null {
  const node = view.node(nodeId);
  if (!node) return null;
  const sum = cloneCapacity(node.free);
  for (const id of node.running) {
    const t = view.task(id);
    const j = t ? view.job(t.jobId) : undefined;
    if (t && j) applyPlacement(sum, j.request, t.gpuIds, 1);
  }
  const u = node.injob.usage;
  if (u) applyUsage(sum, { cpus: u.cpus, memory: u.memory, gpus: [...u.gpus], custom: { ...u.custom }, tasks: u.tasks }, 1);
  for (const h of node.injob.held.values()) applyPlacement(sum, h.req, h.gpuIds, 1);
  return capacityDiff(sum, node.capacity);
}

/** Free resources per live node (agents decide from it whether to hand a task on). */
export function freeView(view: LiveView): Record<string, Usage> {
  const out: Record<string, Usage> = {};
  for (const n of view.nodeList()) {
    if (!n.draining && n.unhealthy === null) out[n.id] = { cpus: n.free.cpus, memory: n.free.memory, gpus: [...n.free.gpus], custom: { ...n.free.custom }, tasks: n.free.tasks };
  }
  return out;
}

/** The live nodes, as a job's `ray.nodes()` and `cluster_resources()` describe them. */
export function clusterView(view: LiveView, addresses: ReadonlyMap<string, string>): NonNullable<InjobAnswer['cluster']> {
  return view.nodeList().map((n) => {
    let address: string;
    try {
      address = new URL(addresses.get(n.id) ?? '').hostname;
    } catch {
      address = '';
    }
    const c = n.capacity;
    return { node_id: n.id, name: n.name, address, total: { cpus: c.cpus, memory: c.memory, gpus: [...c.gpus], custom: { ...c.custom } } };
  });
}
