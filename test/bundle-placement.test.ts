/** Placement groups' bundle placement by strategy, as a pure decision over nodes' free capacity. */
import { describe, expect, it } from 'vitest';
import { placeBundles, type BundleNode, type BundleStrategy } from '../src/head/bundlePlacement.js';
import { capacityFromTotals, type TaskRequest } from '../src/shared/resources.js';

const node = (id: string, cpus: number, gpus = 0): BundleNode => ({ id, free: capacityFromTotals({ num_cpus: cpus, num_gpus: gpus, memory: 8e9, resources: {} }) });
const cpu = (n: number, gpus = 0): TaskRequest => ({ cpus: n, gpus, memory: 0, custom: {} });

const cases: { name: string; nodes: BundleNode[]; bundles: TaskRequest[]; strategy: BundleStrategy; want: string[] | null }[] = [
  { name: 'STRICT_PACK on one node that holds all', nodes: [node('a', 2), node('b', 4)], bundles: [cpu(1), cpu(1), cpu(1)], strategy: 'STRICT_PACK', want: ['b', 'b', 'b'] },
  { name: 'STRICT_PACK when no node holds all', nodes: [node('a', 2), node('b', 2)], bundles: [cpu(1), cpu(1), cpu(1)], strategy: 'STRICT_PACK', want: null },
  { name: 'PACK on one node when it can', nodes: [node('a', 2), node('b', 4)], bundles: [cpu(2), cpu(2)], strategy: 'PACK', want: ['b', 'b'] },
  { name: 'PACK over several nodes when it must', nodes: [node('a', 2), node('b', 2)], bundles: [cpu(2), cpu(1), cpu(1)], strategy: 'PACK', want: ['a', 'b', 'b'] },
  { name: 'PACK that cannot fit at all', nodes: [node('a', 1)], bundles: [cpu(1), cpu(1)], strategy: 'PACK', want: null },
  { name: 'STRICT_SPREAD: one bundle per node', nodes: [node('a', 4), node('b', 4), node('c', 1)], bundles: [cpu(1), cpu(1), cpu(1)], strategy: 'STRICT_SPREAD', want: ['a', 'b', 'c'] },
  { name: 'STRICT_SPREAD with fewer nodes than bundles', nodes: [node('a', 8)], bundles: [cpu(1), cpu(1)], strategy: 'STRICT_SPREAD', want: null },
  { name: 'SPREAD over the nodes, then doubling up', nodes: [node('a', 4), node('b', 4)], bundles: [cpu(1), cpu(1), cpu(1)], strategy: 'SPREAD', want: ['a', 'b', 'a'] },
  { name: 'SPREAD on one node when only one exists', nodes: [node('a', 4)], bundles: [cpu(1), cpu(1)], strategy: 'SPREAD', want: ['a', 'a'] },
  { name: 'GPU bundles go where the GPUs are', nodes: [node('a', 8), node('g', 2, 2)], bundles: [cpu(1, 1), cpu(1, 1)], strategy: 'PACK', want: ['g', 'g'] },
];

describe('placement group bundles', () => {
  it.each(cases)('$name', ({ nodes, bundles, strategy, want }) => {
    const spots = placeBundles(nodes, bundles, strategy);
    expect(spots?.map((s) => s.nodeId) ?? null).toEqual(want);
    // Nothing is taken from the nodes themselves: the caller reserves what it decides.
    for (const n of nodes) expect(n.free.cpus).toBeGreaterThan(0);
  });

  it('gives each GPU bundle its own device', () => {
    const spots = placeBundles([node('g', 2, 2)], [cpu(0, 1), cpu(0, 1)], 'STRICT_PACK');
    expect(spots?.map((s) => s.gpuIds)).toEqual([[0], [1]]);
  });
});
