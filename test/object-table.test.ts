/**
 * One job's object table on its own, in real temporary directories: where files go (shared memory
 * while the node's share allows, else disk), and that everything an object takes (its file, its
 * bytes in memory, its record, the job's store and the node's shared memory) comes back when its
 * owner drops it, once no task needs it; copies of other nodes' objects go when their tasks are done.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobBudget } from '../src/agent/injob/budget.js';
import { ENTRY_COST } from '../src/agent/injob/limits.js';
import { JobObjectDirs, openShmPool, closeShmPool } from '../src/agent/injob/objectDirs.js';
import { ObjectTable, type ObjValue } from '../src/agent/injob/objects.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/cluster.js';

const KiB = 1024;

function table(shmBytes: number) {
  const work = tempDir('raysub-objtable-');
  const tmpfs = tempDir('raysub-objtable-shm-');
  const pool = openShmPool(tmpfs, shmBytes, work, silentLogger());
  const budget = new JobBudget(16 * 1024 * KiB, 1024 * 1024 * KiB, () => undefined);
  const freedRemote: string[] = [];
  const dirs = new JobObjectDirs(path.join(work, 'j', 'job1', 'objects'), 'job1', pool);
  const objects = new ObjectTable(
    dirs,
    () => 'me',
    async (_node, id, dest) => fs.writeFileSync(dest, Buffer.alloc(300 * KiB, id.length)),
    () => new Promise<ObjValue>(() => undefined),
    budget,
    (node, id) => void freedRemote.push(`${node}/${id}`),
  );
  const files = (): string[] => [dirs.shm ?? '', dirs.disk].flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).map((f) => `${d === dirs.disk ? 'disk' : 'shm'}/${f}`) : [])).sort();
  const put = (id: string, bytes: number): ObjValue => {
    objects.claim(id);
    const v = objects.store(id, Buffer.alloc(bytes, 7));
    objects.resolve(id, v);
    return v;
  };
  return { pool, budget, dirs, objects, files, put, freedRemote, work };
}

describe('the object table', () => {
  it('puts large objects in shared memory while the share allows, then on disk', () => {
    const t = table(700 * KiB);
    t.put('a', 300 * KiB);
    t.put('b', 300 * KiB);
    t.put('c', 300 * KiB);
    t.put('small', 10);
    expect(t.files()).toEqual(['disk/c', 'shm/a', 'shm/b']);
    expect([t.dirs.where('a'), t.dirs.where('c'), t.dirs.where('small')]).toEqual(['shm', 'disk', null]);
    expect(t.pool.used).toBe(600 * KiB);
    expect(t.objects.filePath('c')).toBe(path.join(t.dirs.disk, 'c'));
    expect(t.dirs.paths).toEqual([t.dirs.shm, t.dirs.disk]);
  });

  it('counts a value once in the table that made it, and again in another table it is resolved into', () => {
    const a = table(10 * 1024 * KiB);
    const b = table(10 * 1024 * KiB);
    const v = a.put('x', 50 * KiB);
    // Made (and counted) by a: resolving it there again counts nothing more; b has not counted it, and does.
    a.objects.resolve('x', v);
    b.objects.claim('x');
    b.objects.resolve('x', v);
    expect([a.budget.held, b.budget.held]).toEqual([ENTRY_COST + 50 * KiB, ENTRY_COST + 50 * KiB]);
    // A value from elsewhere (another agent, the head) is counted where it is resolved.
    b.objects.claim('y');
    b.objects.resolve('y', { kind: 'inline', data: Buffer.alloc(10 * KiB) });
    expect(b.budget.held).toBe(2 * ENTRY_COST + 60 * KiB);
    a.objects.release(['x']);
    b.objects.release(['x', 'y']);
    expect([a.budget.held, b.budget.held]).toEqual([0, 0]);
  });

  it('gives back everything an object took when its owner drops it, and only once no task needs it', () => {
    const t = table(10 * 1024 * KiB);
    const before = { held: t.budget.held, stored: t.budget.stored };
    t.put('big', 300 * KiB);
    t.put('inline', 50 * KiB);
    t.put('pinned', 300 * KiB);
    t.objects.claim('pending'); // a task's result, not made yet
    t.objects.pin(['pinned']);
    t.objects.pin(['pinned']);
    t.objects.release(['big', 'inline', 'pinned', 'pending', 'unknown']);
    // Freed at once: what nothing needs. Kept: what two tasks still use, and what is not made yet.
    expect(t.files()).toEqual(['shm/pinned']);
    expect(t.objects.has('big') || t.objects.has('inline')).toBe(false);
    t.objects.unpin(['pinned']);
    expect(t.files()).toEqual(['shm/pinned']);
    t.objects.unpin(['pinned']);
    expect(t.files()).toEqual([]);
    // The task's result arrives after its owner dropped it: it goes as soon as it is in.
    t.objects.resolve('pending', t.objects.store('pending', Buffer.alloc(300 * KiB)));
    expect(t.files()).toEqual([]);
    expect(t.objects.size).toBe(0);
    expect({ held: t.budget.held, stored: t.budget.stored }).toEqual(before);
    expect(t.pool.used).toBe(0);
  });

  it('a value another node made and holds is freed there; a copy fetched for tasks goes when they are done, one a process was given stays', async () => {
    const t = table(10 * 1024 * KiB);
    const far = (id: string): ObjValue => {
      t.objects.resolve(id, { kind: 'file', node: 'other', size: 300 * KiB });
      return t.objects.get(id) as ObjValue;
    };
    const forTask = far('forTask');
    const forGet = far('forGet');
    t.objects.pin(['forTask']);
    await t.objects.localPath('forTask', forTask as Extract<ObjValue, { kind: 'file' }>);
    await t.objects.localPath('forGet', forGet as Extract<ObjValue, { kind: 'file' }>, true);
    expect(t.files()).toEqual(['shm/forGet', 'shm/forTask']);
    t.objects.unpin(['forTask']);
    expect(t.files()).toEqual(['shm/forGet']);
    // Fetched again when a later task needs it.
    t.objects.pin(['forTask']);
    expect(await t.objects.localPath('forTask', forTask as Extract<ObjValue, { kind: 'file' }>)).toBe(path.join(t.dirs.shm ?? '', 'forTask'));
    t.objects.unpin(['forTask']);
    // A task placed here by the head brings its arguments' values with it: no record here, the copy goes all the same.
    t.objects.pin(['brought']);
    await t.objects.localPath('brought', { kind: 'file', node: 'other', size: 300 * KiB });
    expect(t.files()).toEqual(['shm/brought', 'shm/forGet']);
    t.objects.unpin(['brought']);
    t.objects.release(['forTask', 'forGet']);
    expect(t.files()).toEqual([]);
    expect(t.freedRemote.sort()).toEqual(['other/forGet', 'other/forTask']);
    expect(t.budget.stored).toBe(0);
    expect(t.pool.used).toBe(0);
  });

  it("removes the previous run's shared-memory directory, and its own when closed", () => {
    const work = tempDir('raysub-objtable-');
    const tmpfs = tempDir('raysub-objtable-shm-');
    const first = openShmPool(tmpfs, 1024, work, silentLogger());
    fs.writeFileSync(path.join(first.root ?? '', 'left-over'), 'x');
    const second = openShmPool(tmpfs, 1024, work, silentLogger());
    expect(fs.readdirSync(tmpfs)).toEqual([path.basename(second.root ?? '')]);
    closeShmPool(second, work);
    expect(fs.readdirSync(tmpfs)).toEqual([]);
    // No usable directory: no shared memory, every object on disk.
    expect(openShmPool(path.join(tmpfs, 'missing'), 1024, work, silentLogger()).root).toBeNull();
    expect(openShmPool(null, 1024, work, silentLogger()).root).toBeNull();
  });
});
