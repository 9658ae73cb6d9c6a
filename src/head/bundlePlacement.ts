/**
 * Where a placement group's bundles go, by its strategy (Ray's): STRICT_PACK puts every bundle on
 * one node; PACK puts them on as few nodes as it can; STRICT_SPREAD puts each on a node of its own;
 * SPREAD spreads them over as many nodes as it can. All bundles are placed at once or none is.
 * Pure: it reads the nodes' free capacity and changes nothing.
 */
import { applyPlacement, cloneCapacity, fit, type Capacity, type ReadonlyCapacity, type TaskRequest } from '../shared/resources.js';

export type BundleStrategy = 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';

export interface BundleNode {
  id: string;
  free: ReadonlyCapacity;
}

export interface BundleSpot {
  nodeId: string;
  gpuIds: number[];
}

/** One spot per bundle (in order), or null when the nodes cannot hold them now. */
export function placeBundles(nodes: readonly BundleNode[], bundles: readonly TaskRequest[], strategy: BundleStrategy): BundleSpot[] | null {
  const free = new Map<string, Capacity>(nodes.map((n) => [n.id, cloneCapacity(n.free)]));
  // Most free CPUs first, so PACK fills the roomiest node and SPREAD starts there.
  const order = [...nodes].sort((a, b) => b.free.cpus - a.free.cpus).map((n) => n.id);
  const take = (nodeId: string, req: TaskRequest): BundleSpot | null => {
    const cap = free.get(nodeId);
    const p = cap ? fit(cap, req) : null;
    if (!cap || !p) return null;
    applyPlacement(cap, req, p.gpuIds, -1);
    return { nodeId, gpuIds: p.gpuIds };
  };
  const out: BundleSpot[] = [];
  switch (strategy) {
    case 'STRICT_PACK':
      for (const id of order) {
        const trial = placeAllOn(free.get(id), bundles, id);
        if (trial) return trial;
      }
      return null;
    case 'PACK': {
      for (const id of order) {
        const trial = placeAllOn(free.get(id), bundles, id);
        if (trial) return trial;
      }
      // Several nodes: each bundle on the first node (roomiest first) that still holds it.
      for (const b of bundles) {
        const spot = firstSpot(order, (id) => take(id, b));
        if (!spot) return null;
        out.push(spot);
      }
      return out;
    }
    case 'STRICT_SPREAD': {
      const used = new Set<string>();
      for (const b of bundles) {
        const spot = firstSpot(order.filter((id) => !used.has(id)), (id) => take(id, b));
        if (!spot) return null;
        used.add(spot.nodeId);
        out.push(spot);
      }
      return out;
    }
    case 'SPREAD': {
      const used = new Map<string, number>();
      for (const b of bundles) {
        // The node with the fewest of this group's bundles so far that holds it.
        const ranked = [...order].sort((x, y) => (used.get(x) ?? 0) - (used.get(y) ?? 0));
        const spot = firstSpot(ranked, (id) => take(id, b));
        if (!spot) return null;
        used.set(spot.nodeId, (used.get(spot.nodeId) ?? 0) + 1);
        out.push(spot);
      }
      return out;
    }
  }
}

/** Whether nodes with these totals could ever hold the bundles (a group that could not stays pending, as in Ray, but says why). */
export function couldEverPlace(nodes: readonly BundleNode[], bundles: readonly TaskRequest[], strategy: BundleStrategy): boolean {
  return placeBundles(nodes, bundles, strategy) !== null;
}

function placeAllOn(cap: Capacity | undefined, bundles: readonly TaskRequest[], nodeId: string): BundleSpot[] | null {
  if (!cap) return null;
  const trial = cloneCapacity(cap);
  const out: BundleSpot[] = [];
  for (const b of bundles) {
    const p = fit(trial, b);
    if (!p) return null;
    applyPlacement(trial, b, p.gpuIds, -1);
    out.push({ nodeId, gpuIds: p.gpuIds });
  }
  return out;
}

function firstSpot(ids: readonly string[], take: (id: string) => BundleSpot | null): BundleSpot | null {
  for (const id of ids) {
    const s = take(id);
    if (s) return s;
  }
  return null;
}
