/**
 * The agent's file operations on small directories run in place, without a worker thread (each
 * holds its own V8 heap, about 12 MiB of a head's memory with its embedded agent): decided on real
 * temporary directories in process, and the built module's pool seen starting no thread for them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeAside } from '../src/agent/files/aside.js';
import { runSmallFileOp, SMALL_DIR_ENTRIES } from '../src/agent/files/ops.js';
import { tempDir } from './helpers/cluster.js';

const root = path.resolve(import.meta.dirname, '..');

type Layout = Record<string, string | number | null>; // file content, a file of n bytes, or (null) a directory

function make(dir: string, layout: Layout): void {
  fs.mkdirSync(dir);
  for (const [name, v] of Object.entries(layout)) {
    const p = path.join(dir, name);
    if (v === null) fs.mkdirSync(p);
    else fs.writeFileSync(p, typeof v === 'number' ? Buffer.alloc(v) : v);
  }
}

const many = (n: number): Layout => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, 'x']));

describe('small file operations in place', () => {
  it.each<[string, Layout, boolean]>([
    ['an empty directory', {}, true],
    ['a few small files', { out: 'hello', 'err.log': 'x'.repeat(1000) }, true],
    [`${SMALL_DIR_ENTRIES} files`, many(SMALL_DIR_ENTRIES), true],
    [`${SMALL_DIR_ENTRIES + 1} files (left to a worker)`, many(SMALL_DIR_ENTRIES + 1), false],
    ['a subdirectory (left to a worker)', { sub: null }, false],
    ['a file over 1 MiB (left to a worker)', { big: 1024 * 1024 + 1 }, false],
  ])('remove: %s', (_name, layout, inPlace) => {
    const dir = path.join(tempDir(), 't');
    make(dir, layout);
    const result = runSmallFileOp({ op: 'remove', path: dir });
    if (inPlace) {
      expect(result).toEqual({ entries: 0, bytes: 0 });
      expect(fs.existsSync(dir)).toBe(false);
    } else {
      expect(result).toBeNull();
      // Nothing removed before deciding: the worker gets the whole tree.
      expect(fs.readdirSync(dir).sort()).toEqual(Object.keys(layout).sort());
    }
  });

  it('remove: a symbolic link inside is removed, never followed', () => {
    const base = tempDir();
    const target = path.join(base, 'keep');
    fs.writeFileSync(target, 'keep me');
    const dir = path.join(base, 't');
    make(dir, {});
    fs.symlinkSync(target, path.join(dir, 'link'));
    expect(runSmallFileOp({ op: 'remove', path: dir })).not.toBeNull();
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('remove: a path that is gone is done; a plain file or another operation is left to the worker', () => {
    const base = tempDir();
    expect(runSmallFileOp({ op: 'remove', path: path.join(base, 'never') })).toEqual({ entries: 0, bytes: 0 });
    fs.writeFileSync(path.join(base, 'file'), 'x');
    expect(runSmallFileOp({ op: 'remove', path: path.join(base, 'file') })).toBeNull();
    expect(fs.existsSync(path.join(base, 'file'))).toBe(true);
    make(path.join(base, 'src'), { a: 'x' });
    expect(runSmallFileOp({ op: 'copy', src: path.join(base, 'src'), dest: path.join(base, 'dst'), mode: 0o700, maxEntries: 10 })).toBeNull();
    expect(fs.existsSync(path.join(base, 'dst'))).toBe(false);
  });

  it('chown: the directory and each entry, links themselves; larger trees and missing ones left to the worker', () => {
    const base = tempDir();
    const dir = path.join(base, 't');
    make(dir, { a: 'x', b: 'y' });
    fs.symlinkSync('/etc/hostname', path.join(dir, 'link'));
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    expect(runSmallFileOp({ op: 'chown', dir, uid, gid })).toEqual({ entries: 4, bytes: 0 });
    for (const name of ['', 'a', 'b', 'link']) expect(fs.lstatSync(path.join(dir, name)).uid).toBe(uid);
    make(path.join(base, 'deep'), { sub: null });
    expect(runSmallFileOp({ op: 'chown', dir: path.join(base, 'deep'), uid, gid })).toBeNull();
    expect(runSmallFileOp({ op: 'chown', dir: path.join(base, 'gone'), uid, gid })).toBeNull();
  });

  it('the built pool starts no worker thread for small directories, and one for a deeper tree', () => {
    const module = path.join(root, 'dist', 'agent', 'files', 'index.js');
    if (!fs.existsSync(module)) {
      console.warn(`skipped: ${module} is not built (npm run build)`);
      return;
    }
    const base = tempDir();
    for (let i = 0; i < 5; i++) make(path.join(base, `small${i}`), { out: 'x' });
    make(path.join(base, 'deep'), { sub: null });
    const script = `
      const { fileOp, fileWorkerThreads } = await import(${JSON.stringify(module)});
      const out = [];
      for (let i = 0; i < 5; i++) await fileOp({ op: 'remove', path: ${JSON.stringify(base)} + '/small' + i });
      out.push(fileWorkerThreads());
      await fileOp({ op: 'remove', path: ${JSON.stringify(base)} + '/deep' });
      out.push(fileWorkerThreads());
      console.log(JSON.stringify(out));
      process.exit(0);`;
    const file = path.join(tempDir(), 'pool.mjs');
    fs.writeFileSync(file, script);
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
    expect(JSON.parse(out.trim())).toEqual([0, 1]);
    expect(fs.readdirSync(base)).toEqual([]);
  });
});

describe('removing a tree aside', () => {
  it('takes the directory away at once, removes it in the background, and leaves one made again under its name', async () => {
    const root = tempDir('raysub-aside-');
    const dir = path.join(root, 'job');
    fs.mkdirSync(path.join(dir, 'objects', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'objects', 'deep', 'x'), 'data');
    const errors: unknown[] = [];
    removeAside(dir, (err) => errors.push(err));
    expect(fs.existsSync(dir)).toBe(false);
    // The same name made again at once is another directory, never removed by the one before.
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'new'), 'kept');
    await expect.poll(() => fs.readdirSync(root)).toEqual(['job']);
    expect(fs.readdirSync(dir)).toEqual(['new']);
    // A directory already gone is nothing to remove.
    removeAside(path.join(root, 'missing'), (err) => errors.push(err));
    expect(errors).toEqual([]);
  });
});
