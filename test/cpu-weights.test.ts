/**
 * raysub's cgroups weigh as many busy processes as the CPUs they offer, so a task holding its CPUs
 * keeps them when the rest of the machine is busy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findCgroupMounts } from '../src/agent/sandbox/cgroupMounts.js';
import { ownerTag } from '../src/agent/sandbox/cgroupOwner.js';
import { AgentCgroups } from '../src/agent/sandbox/cgroups.js';
import { cpuWeight } from '../src/agent/sandbox/cpuWeights.js';
import { rootMemoryLimit } from '../src/agent/sandbox/rootMemory.js';

describe('CPU weights of raysub and its agents', () => {
  it.each([
    [0, false, 1024],
    [1, false, 1024],
    [2, false, 2048],
    [0.5, false, 1024],
    [2, true, 200],
    [64, true, 6400],
    [500, true, 10_000],
  ])('%s CPUs (cgroup2: %s) weigh %s', (cpus, v2, want) => {
    expect(cpuWeight(cpus, v2)).toBe(want);
  });

  it("an agent's root weighs the CPUs it offers, and raysub/ the machine's", (ctx) => {
    const mount = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')).v1.cpu;
    let writable = false;
    try {
      fs.accessSync(mount ?? '/nonexistent', fs.constants.W_OK);
      writable = true;
    } catch {
      // below
    }
    if (!mount || !writable || process.getuid?.() !== 0) {
      console.log(`skipped: needs root and a writable cgroup v1 cpu hierarchy (found ${mount ?? 'none'})`);
      ctx.skip();
      return;
    }
    const { cgroups, problems } = AgentCgroups.open({ v1: { cpu: mount }, unified: null }, `zz-w-${crypto.randomBytes(3).toString('hex')}@${ownerTag()}`, undefined, 3);
    onTestFinished(() => cgroups?.close());
    expect(problems.filter((p) => p.startsWith('cpu.shares'))).toEqual([]);
    const root = cgroups?.rootOf('cpu');
    expect(root).toBeTruthy();
    expect(fs.readFileSync(path.join(root ?? '', 'cpu.shares'), 'utf8').trim()).toBe('3072');
    expect(fs.readFileSync(path.join(path.dirname(root ?? ''), 'cpu.shares'), 'utf8').trim()).toBe(String(1024 * os.availableParallelism()));
  });
});

describe("the memory of an agent's tasks together", () => {
  const GiB = 1024 ** 3;
  const MiB = 1024 ** 2;
  it.each([
    ['what the node offers, when the machine has more', 4 * GiB, 24 * GiB, 4 * GiB],
    ['the machine less 5% when the node offers all of it', 24 * GiB, 24 * GiB, 24 * GiB - Math.floor(24 * GiB * 0.05)],
    ['the machine less 256 MiB on a small machine', 2 * GiB, 2 * GiB, 2 * GiB - 256 * MiB],
    ['never under 64 MiB', 1 * MiB, 24 * GiB, 64 * MiB],
  ])('%s', (_name, offered, total, want) => {
    expect(rootMemoryLimit(offered, total)).toBe(want);
  });
});
