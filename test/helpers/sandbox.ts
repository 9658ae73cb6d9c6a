/**
 * Helpers for sandbox tests: skip (saying why) where the node cannot sandbox, and find an
 * agent's cgroups.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'vitest';
import { findCgroupMounts, V1_CONTROLLERS } from '../../src/agent/sandbox/cgroupMounts.js';
import type { TestHead } from './cluster.js';

/** A name unique to this test run, for node names and process markers. */
export function unique(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

/** Skip the test, printing why, unless `node` runs workers in bwrap with cgroups. */
export async function requireSandbox(head: Pick<TestHead, 'client'>, ctx: TestContext, nodeName?: string): Promise<void> {
  const nodes = await head.client.nodes();
  const node = nodeName ? nodes.find((n) => n.node_name === nodeName) : nodes[0];
  if (node?.sandbox.mode === 'bwrap' && node.sandbox.cgroups) return;
  const why = `node ${node?.node_name ?? '?'} has sandbox ${node?.sandbox.mode ?? 'none'} (${node?.sandbox.detail ?? 'not registered'})`;
  console.warn(`skipping "${ctx.task.name}": ${why}`);
  ctx.skip();
}

/** Task cgroup directories under every hierarchy's raysub/<node>-*\/ root (not the idle spare's). */
export function taskCgroups(nodeName: string): string[] {
  const mounts = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const out: string[] = [];
  for (const mount of [...V1_CONTROLLERS.map((c) => mounts.v1[c]), mounts.unified]) {
    if (!mount) continue;
    const top = path.join(mount, 'raysub');
    if (!fs.existsSync(top)) continue;
    for (const agent of fs.readdirSync(top).filter((d) => d.startsWith(`${nodeName}-`))) {
      const root = path.join(top, agent);
      for (const e of fs.readdirSync(root, { withFileTypes: true })) if (e.isDirectory() && !e.name.startsWith('spare-')) out.push(path.join(root, e.name));
    }
  }
  return out;
}

/** The parsed `RESULT {...}` line a probe job printed. */
export function resultOf<T>(log: string): T {
  const line = log.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT line in the job's log:\n${log}`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}
