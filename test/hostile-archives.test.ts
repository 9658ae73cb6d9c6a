/**
 * Hostile packages: an attack corpus of archives (traversal, link chains, links then files or
 * directories through them, device entries, duplicates that overwrite, hard links out of the
 * tree, NUL names, double compression), bombs, and names that lie about their content. Each goes
 * through the real HTTP API of a real head, and the corpus also through the agents' own
 * extraction code; every test checks the file system outside the package afterwards.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { extractArchive, type ArchiveKind } from '../src/shared/archive/index.js';
import { contentName, deflateBomb, gzipAgain, gzipBomb, listTree, putPackage, writeArchive, zipWithNul, type Spec } from './helpers/archives.js';
import { startAgent, startHead, tempDir, waitFor } from './helpers/cluster.js';
import { ensureRayVenv, RAY_VENV, run } from './helpers/rayVenv.js';

const put = putPackage;

/** One hostile archive: its entries in order, and what the refusal must say. */
interface Case {
  label: string;
  file: string;
  specs?: Spec[];
  make?: (file: string) => string;
  says: RegExp;
}

const ESC = `escaped-${crypto.randomBytes(4).toString('hex')}`;
const chain: Spec[] = [
  { name: 'x', type: 'symlink', target: '.' },
  { name: 'y0', type: 'symlink', target: 'x/..' },
  { name: 'y1', type: 'symlink', target: 'y0/..' },
  { name: 'y2', type: 'symlink', target: 'y1/..' },
];

const corpus: Case[] = [];
for (const ext of ['zip', 'tar.gz'] as const) {
  corpus.push(
    { label: `${ext}: a link chain, then a file through it`, file: `chain-file.${ext}`, specs: [...chain, { name: `y2/${ESC}.txt`, type: 'file', data: 'owned' }], says: /under the link "y2"/ },
    { label: `${ext}: a link chain alone`, file: `chain.${ext}`, specs: chain, says: /link "y0" -> "x\/\.\." resolves outside/ },
    { label: `${ext}: a link, then a file through it`, file: `link-file.${ext}`, specs: [{ name: 'l', type: 'symlink', target: '../..' }, { name: `l/${ESC}.txt`, type: 'file', data: 'owned' }], says: /under the link "l"|resolves outside/ },
    { label: `${ext}: a harmless-looking link, then a file through it`, file: `inner-link-file.${ext}`, specs: [{ name: 'd/', type: 'dir' }, { name: 'l', type: 'symlink', target: 'd' }, { name: `l/${ESC}.txt`, type: 'file', data: 'owned' }], says: /under the link "l"/ },
    { label: `${ext}: a link, then a directory through it`, file: `link-dir.${ext}`, specs: [{ name: 'l', type: 'symlink', target: '../..' }, { name: `l/${ESC}`, type: 'dir' }], says: /under the link "l"|resolves outside/ },
    { label: `${ext}: a link, then a file of the same name`, file: `link-overwrite.${ext}`, specs: [{ name: 'l', type: 'symlink', target: `../${ESC}.txt` }, { name: 'l', type: 'file', data: 'owned' }], says: /appears twice|resolves outside/ },
    { label: `${ext}: a directory, then a link of the same name`, file: `dir-overwrite.${ext}`, specs: [{ name: 'd', type: 'dir' }, { name: 'd', type: 'symlink', target: '..' }], says: /appears twice.*a directory/ },
    { label: `${ext}: one file twice`, file: `dup.${ext}`, specs: [{ name: 'a.txt', type: 'file', data: '1' }, { name: 'a.txt', type: 'file', data: '2' }], says: /appears twice.*a file/ },
    { label: `${ext}: a link to an absolute path`, file: `abs-link.${ext}`, specs: [{ name: 'l', type: 'symlink', target: '/etc/shadow' }], says: /absolute path/ },
    { label: `${ext}: a dangling link whose missing part hides a climb`, file: `dangling.${ext}`, specs: [{ name: 'l', type: 'symlink', target: 'missing/../../x' }], says: /resolves outside/ },
    { label: `${ext}: links in a loop`, file: `loop.${ext}`, specs: [{ name: 'a', type: 'symlink', target: 'b' }, { name: 'b', type: 'symlink', target: 'a' }, { name: 'c', type: 'symlink', target: 'a/x' }], says: /more than 40 links/ },
    { label: `${ext}: a ".." entry`, file: `dotdot.${ext}`, specs: [{ name: `a/../../${ESC}.txt`, type: 'file', data: 'owned' }], says: /"\.\."|invalid relative path/ },
    { label: `${ext}: a character device`, file: `chardev.${ext}`, specs: [{ name: 'null', type: 'chardev' }], says: /CharacterDevice|not a file, directory or link/ },
    { label: `${ext}: a fifo`, file: `fifo.${ext}`, specs: [{ name: 'pipe', type: 'fifo' }], says: /FIFO|not a file, directory or link/ },
  );
}
corpus.push(
  { label: 'tar.gz: an absolute path', file: 'abs.tar.gz', specs: [{ name: `/tmp/${ESC}.txt`, type: 'file', data: 'owned' }], says: /absolute path/ },
  { label: 'zip: an absolute path', file: 'abs.zip', specs: [{ name: `/tmp/${ESC}.txt`, type: 'file', data: 'owned' }], says: /absolute path/ },
  { label: 'tar.gz: a hard link out of the tree', file: 'hard-out.tar.gz', specs: [{ name: 'h', type: 'hardlink', target: '../../../etc/passwd' }], says: /hard link "h" points outside/ },
  { label: 'tar.gz: a hard link to a link', file: 'hard-to-link.tar.gz', specs: [{ name: 's', type: 'symlink', target: 'nowhere' }, { name: 'h', type: 'hardlink', target: 's' }], says: /not a regular file earlier/ },
  { label: 'tar.gz: a hard link through a link', file: 'hard-through-link.tar.gz', specs: [{ name: 'd/f', type: 'file', data: 'x' }, { name: 's', type: 'symlink', target: 'd' }, { name: 'h', type: 'hardlink', target: 's/f' }], says: /not a regular file earlier/ },
  { label: 'zip: a NUL byte in a name', file: 'nul.zip', make: zipWithNul, says: /NUL byte/ },
  { label: 'tar.gz: compressed twice', file: 'twice.tar.gz', make: (f) => gzipAgain(writeArchive(`${f}.inner.tar.gz`, [{ name: 'a.txt', type: 'file', data: 'a' }]), f), says: /compressed twice/ },
);

const GOOD: Spec[] = [
  { name: 'src/main.py', type: 'file', data: 'print("hi")\n' },
  { name: 'bin/run', type: 'file', data: '#!/bin/sh\n', mode: 0o755 },
  { name: 'lib', type: 'symlink', target: 'src' },
  { name: 'src/up', type: 'symlink', target: '../bin/run' },
  { name: 'empty/', type: 'dir' },
];

let corpusDir = '';
beforeAll(() => {
  corpusDir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'raysub-corpus-'));
  for (const c of corpus) c.file = c.specs ? writeArchive(path.join(corpusDir, c.file), c.specs) : (c.make as (f: string) => string)(path.join(corpusDir, c.file));
  return () => fs.rmSync(corpusDir, { recursive: true, force: true });
});

function kindOf(file: string): ArchiveKind {
  return file.endsWith('.zip') ? 'zip' : 'tar.gz';
}

describe('hostile archives', () => {
  it("the agents' extraction refuses every archive of the corpus and writes nothing outside the package dir", async () => {
    // root/a/b/jail/pkg: a link chain followed on disk would land three levels up, still inside root.
    const root = tempDir('raysub-extract-');
    const jail = path.join(root, 'a', 'b', 'jail');
    fs.mkdirSync(path.join(jail, 'sentinel'), { recursive: true });
    const before = listTree(root);
    const caps = { maxBytes: 1024 ** 3, maxEntries: 1000 };
    for (const c of corpus) {
      const dest = path.join(jail, 'pkg');
      const err = await extractArchive(c.file, kindOf(c.file), dest, caps).then(() => null, (e: unknown) => e as { code?: string; message: string });
      expect(err?.code, c.label).toBe('INVALID_PACKAGE');
      expect(err?.message, c.label).toMatch(c.says);
      expect(listTree(root), c.label).toEqual(before);
    }
    expect(fs.existsSync(`/tmp/${ESC}.txt`)).toBe(false);

    // A package whose links stay inside unpacks, read-only, links as links.
    const good = writeArchive(path.join(root, 'good.zip'), GOOD);
    const dest = path.join(jail, 'pkg');
    await extractArchive(good, 'zip', dest, caps);
    expect(listTree(dest)).toEqual(['bin', 'bin/run', 'empty', 'lib', 'src', 'src/main.py', 'src/up']);
    expect(fs.readlinkSync(path.join(dest, 'lib'))).toBe('src');
    expect(fs.readFileSync(path.join(dest, 'lib', 'up'), 'utf8')).toBe('#!/bin/sh\n');
    expect(fs.statSync(path.join(dest, 'bin', 'run')).mode & 0o777).toBe(0o555);
    expect(fs.statSync(path.join(dest, 'src', 'main.py')).mode & 0o777).toBe(0o444);
    expect(fs.statSync(dest).mode & 0o777).toBe(0o555);
  });

  it('the head refuses every archive of the corpus at upload, stores nothing and keeps serving', async () => {
    const head = await startHead({ localAgent: false });
    const packagesDir = path.join(head.dataDir, 'packages');
    const dataBefore = listTree(head.dataDir).filter((p) => !p.startsWith('logs') && !p.startsWith('raysub.db'));
    for (const c of corpus) {
      const bytes = fs.readFileSync(c.file);
      // Under raysub's name for its bytes, and under Ray's name for an uploaded archive (SHA-1 of the bytes).
      const sha1 = crypto.createHash('sha1').update(bytes).digest('hex');
      for (const name of [contentName(c.file), `_ray_pkg_${sha1}.${kindOf(c.file)}`]) {
        const res = await put(head, name, bytes);
        expect(res.status, `${c.label} as ${name}`).toBe(400);
        expect(res.code, c.label).toBe('INVALID_PACKAGE');
        expect(res.message, c.label).toMatch(c.says);
      }
    }
    expect(fs.readdirSync(packagesDir).filter((f) => f !== '.incoming')).toEqual([]);
    expect(fs.readdirSync(path.join(packagesDir, '.incoming'))).toEqual([]);
    expect(listTree(head.dataDir).filter((p) => !p.startsWith('logs') && !p.startsWith('raysub.db'))).toEqual(dataBefore);
    expect(fs.existsSync(`/tmp/${ESC}.txt`)).toBe(false);
    expect((await head.client.version()).version).toBeTruthy();
  });
});

/** Resident memory of a process and its peak since the peak was last reset (bytes). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Reset a process's peak resident memory to its current one; false where the kernel does not allow it. */
function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const MB = 1_000_000;

describe('bombs', () => {
  it('a 1 MB gzip bomb and a 1 MB deflate bomb cost the head less than 64 MB and are refused naming the cap', async (ctx) => {
    const dir = tempDir('raysub-bombs-');
    const tarBomb = gzipBomb(path.join(dir, 'bomb.tar.gz'), 1100);
    const zipBomb = deflateBomb(path.join(dir, 'bomb.zip'), 1100);
    for (const f of [tarBomb, zipBomb]) expect(fs.statSync(f).size).toBeLessThan(1.3 * MB);
    const head = await startHead({ localAgent: false });
    if (!resetPeak(head.pid)) {
      console.warn(`skipping "${ctx.task.name}": /proc/${head.pid}/clear_refs cannot be written here, so peak memory cannot be measured`);
      return ctx.skip();
    }
    // Load the archive code paths first, so that what is measured is the bombs.
    const warm = writeArchive(path.join(dir, 'warm.zip'), GOOD);
    expect((await put(head, contentName(warm), fs.readFileSync(warm))).status).toBe(200);
    const warmTar = writeArchive(path.join(dir, 'warm.tar.gz'), GOOD);
    expect((await put(head, contentName(warmTar), fs.readFileSync(warmTar))).status).toBe(200);
    for (const bomb of [tarBomb, zipBomb]) {
      const before = memoryOf(head.pid).rss;
      resetPeak(head.pid);
      const res = await put(head, contentName(bomb), fs.readFileSync(bomb));
      const growth = memoryOf(head.pid).peak - before;
      console.log(`${path.basename(bomb)} (${fs.statSync(bomb).size} bytes, 1100 MiB inflated): head peak RSS grew by ${(growth / MB).toFixed(1)} MB`);
      expect(res.status).toBe(400);
      expect(res.code).toBe('INVALID_PACKAGE');
      expect(res.message).toContain('more than 1.0 GiB, the limit on unpacked size (--max-package-unpacked-size)');
      expect(growth).toBeLessThan(64 * MB);
    }
    expect(fs.readdirSync(path.join(head.dataDir, 'packages')).filter((f) => !f.startsWith('.')).sort()).toEqual([contentName(warm), contentName(warmTar)].sort());
  });

  it('a bomb the head was told to accept costs the agent less than 64 MB and fails the job naming the agent\'s cap', async (ctx) => {
    const dir = tempDir('raysub-bombs-');
    const bomb = gzipBomb(path.join(dir, 'bomb.tar.gz'), 1100);
    const head = await startHead({ localAgent: false, args: ['--max-package-unpacked-size', '2G'] });
    const agent = await startAgent(head, { name: `bombed-${crypto.randomBytes(3).toString('hex')}`, numCpus: 1 });
    const agentPid = agent.proc.pid as number;
    if (!resetPeak(agentPid)) {
      console.warn(`skipping "${ctx.task.name}": /proc/${agentPid}/clear_refs cannot be written here`);
      return ctx.skip();
    }
    let before = memoryOf(head.pid).rss;
    resetPeak(head.pid);
    expect((await put(head, contentName(bomb), fs.readFileSync(bomb))).status).toBe(200);
    const headGrowth = memoryOf(head.pid).peak - before;
    console.log(`bomb.tar.gz accepted by the head (1100 MiB inflated): head peak RSS grew by ${(headGrowth / MB).toFixed(1)} MB`);
    expect(headGrowth).toBeLessThan(64 * MB);

    before = memoryOf(agentPid).rss;
    resetPeak(agentPid);
    await head.client.submitJob({ entrypoint: 'ls', submission_id: 'bombed', runtime_env: { working_dir: `gcs://${contentName(bomb)}` } });
    const job = await head.client.waitForJob('bombed', { timeoutMs: 170_000 });
    const agentGrowth = memoryOf(agentPid).peak - before;
    console.log(`the agent refused it: agent peak RSS grew by ${(agentGrowth / MB).toFixed(1)} MB`);
    expect(job.status).toBe('FAILED');
    expect(job.raysub.error_type).toBe('RUNTIME_ENV_SETUP_FAILED');
    expect(job.raysub.message).toContain('more than 1.0 GiB, the limit on unpacked size (--max-package-unpacked-size)');
    expect(agentGrowth).toBeLessThan(64 * MB);
    // Nothing of it is left on the agent: no half-unpacked tree, no download.
    await waitFor(() => listTree(path.join(agent.workDir, 'unpacked')).length === 0 && listTree(path.join(agent.workDir, 'packages')).length === 0, { what: 'the agent to clean up' });
  });

  it('caps the number of entries, naming the cap', async () => {
    const dir = tempDir('raysub-entries-');
    const many = writeArchive(path.join(dir, 'many.tar.gz'), Array.from({ length: 60 }, (_, i) => ({ name: `d/f${i}`, type: 'file' as const, data: 'x' })));
    const head = await startHead({ localAgent: false, args: ['--max-package-entries', '50'] });
    const res = await put(head, contentName(many), fs.readFileSync(many));
    expect(res).toMatchObject({ status: 400, code: 'INVALID_PACKAGE' });
    expect(res.message).toContain('more than 50 entries, the limit on entries (--max-package-entries)');
  });
});

/** Ray's own packaging code: the name Ray gives a directory (or module, or file) and the zip it uploads. */
const RAY_PACKER = String.raw`
import json, sys
from pathlib import Path
from ray._private.runtime_env.packaging import create_package, get_uri_for_directory, get_uri_for_file
out = []
for kind, src, dest in json.loads(sys.argv[1]):
    if kind == 'file':
        uri = get_uri_for_file(src)
        create_package(src, Path(dest), include_gitignore=True)
    else:
        uri = get_uri_for_directory(src, include_gitignore=True)
        create_package(src, Path(dest), include_gitignore=True, include_parent_dir=(kind == 'module'))
    out.append(uri[len('gcs://'):])
Path(sys.argv[2]).write_text(json.dumps(out))
`;

describe('package names', () => {
  let raySkip: string | null = null;
  beforeAll(async () => {
    raySkip = await ensureRayVenv();
    if (raySkip) console.log(`Ray naming checks skipped: ${raySkip}`);
  }, 600_000);

  it('names are checked by their schema and against their content, for every naming scheme', async () => {
    const head = await startHead({ localAgent: false });
    const dir = tempDir('raysub-names-');
    const pkg = writeArchive(path.join(dir, 'pkg.tar.gz'), GOOD);
    const bytes = fs.readFileSync(pkg);
    for (const bad of ['..', '..%2F..%2Fetc%2Fpasswd', 'a%2Fb.zip', 'x%00.zip', '_raysub_pkg_abc.tar.gz', 'random.zip', `${'a'.repeat(300)}.whl`, 'a..b.whl', '.hidden.whl']) {
      const res = await put(head, bad, bytes);
      expect(res.status, bad).toBeGreaterThanOrEqual(400);
      expect(res.status, bad).toBeLessThan(500);
      if (res.status === 400) expect(res.code, bad).toBe('INVALID_PACKAGE');
    }
    const sha1 = crypto.createHash('sha1').update(bytes).digest('hex');
    const lies = [`_raysub_pkg_${'0'.repeat(64)}.tar.gz`, `_ray_pkg_${'0'.repeat(40)}.tar.gz`, `_ray_pkg_${sha1}.zip`];
    for (const name of lies) {
      const res = await put(head, name, bytes);
      expect(res, name).toMatchObject({ status: 400, code: 'INVALID_PACKAGE' });
    }
    // Under a true name: stored, once; the same bytes again are a success; nothing else was stored.
    expect((await put(head, contentName(pkg), bytes)).status).toBe(200);
    expect((await put(head, contentName(pkg), bytes)).status).toBe(200);
    expect((await put(head, `_ray_pkg_${sha1}.tar.gz`, bytes)).status).toBe(200);
    expect(fs.readdirSync(path.join(head.dataDir, 'packages')).filter((f) => !f.startsWith('.')).sort()).toEqual([contentName(pkg), `_ray_pkg_${sha1}.tar.gz`].sort());

    // A wheel is named by its file name, not its content: the first upload stays, other content conflicts.
    const wheel = writeArchive(path.join(dir, 'w1.zip'), [{ name: 'mod/__init__.py', type: 'file', data: 'x = 1\n' }]);
    const other = writeArchive(path.join(dir, 'w2.zip'), [{ name: 'mod/__init__.py', type: 'file', data: 'x = 2\n' }]);
    const wheelName = 'mod-1.0-py3-none-any.whl';
    expect((await put(head, wheelName, fs.readFileSync(wheel))).status).toBe(200);
    expect(await put(head, wheelName, fs.readFileSync(other))).toMatchObject({ status: 409, code: 'PACKAGE_CONFLICT' });
    expect(fs.readFileSync(path.join(head.dataDir, 'packages', wheelName))).toEqual(fs.readFileSync(wheel));
    // The same content written again (other timestamps, other order) is the same package.
    const again = writeArchive(path.join(dir, 'w3.zip'), [{ name: 'mod/', type: 'dir' }, { name: 'mod/__init__.py', type: 'file', data: 'x = 1\n' }]);
    expect(fs.readFileSync(again).equals(fs.readFileSync(wheel))).toBe(false);
    expect((await put(head, wheelName, fs.readFileSync(again))).status).toBe(200);
    expect(fs.readFileSync(path.join(head.dataDir, 'packages', wheelName))).toEqual(fs.readFileSync(wheel));

    // A job cannot name a package by a path.
    for (const uri of ['gcs://../../etc/passwd', 'gcs://a/b.zip', `gcs://${'_ray_pkg_'}zz.zip`]) {
      await expect(head.client.submitJob({ entrypoint: 'true', submission_id: `bad-${crypto.randomBytes(3).toString('hex')}`, runtime_env: { working_dir: uri } })).rejects.toMatchObject({ code: 'INVALID_RUNTIME_ENV' });
    }
  });

  it("Ray's names for a directory, a py_modules directory and a module file are checked with Ray's own hash", async (ctx) => {
    if (raySkip) return ctx.skip();
    const head = await startHead({ localAgent: false });
    const src = tempDir('raysub-ray-src-');
    const files: Record<string, string> = { 'main.py': 'print(1)\n', 'src/sub/a.txt': 'x\n', 'mod/pkg/__init__.py': 'y = 1\n', 'single.py': 'z = 2\n' };
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
      fs.writeFileSync(path.join(src, name), content);
    }
    fs.mkdirSync(path.join(src, 'empty'));
    const out = tempDir('raysub-ray-zips-');
    const jobs: [string, string, string][] = [
      ['dir', src, path.join(out, 'dir.zip')],
      ['module', path.join(src, 'mod'), path.join(out, 'module.zip')],
      ['file', path.join(src, 'single.py'), path.join(out, 'file.zip')],
    ];
    const rayPack = async (list: [string, string, string][]): Promise<string[]> => {
      const result = path.join(out, `names-${crypto.randomBytes(3).toString('hex')}.json`);
      const packed = await run(path.join(RAY_VENV, 'bin', 'python'), ['-c', RAY_PACKER, JSON.stringify(list), result], {});
      expect(packed.code, packed.out).toBe(0);
      return JSON.parse(fs.readFileSync(result, 'utf8')) as string[];
    };
    const names = await rayPack(jobs);
    for (const [i, name] of names.entries()) {
      expect(name).toMatch(/^_ray_pkg_[0-9a-f]{16}\.zip$/);
      const zip = fs.readFileSync((jobs[i] as [string, string, string])[2]);
      expect((await put(head, name, zip)).status, name).toBe(200);
    }
    // The same names with one byte of content changed: refused.
    fs.writeFileSync(path.join(src, 'main.py'), 'print(2)\n');
    fs.writeFileSync(path.join(src, 'mod', 'pkg', '__init__.py'), 'y = 2\n');
    fs.writeFileSync(path.join(src, 'single.py'), 'z = 3\n');
    await rayPack(jobs.map(([k, s, d]) => [k, s, `${d}.2.zip`]));
    for (const [i, name] of names.entries()) {
      const tampered = fs.readFileSync(`${(jobs[i] as [string, string, string])[2]}.2.zip`);
      const fresh = `_ray_pkg_${crypto.randomBytes(8).toString('hex')}.zip`;
      for (const n of [name, fresh]) {
        const res = await put(head, n, tampered);
        // Under the old name the package exists: other content conflicts (or is refused as mislabelled).
        expect([400, 409], n).toContain(res.status);
        expect(res.message, n).toMatch(/does not match its name|already exists with other content/);
      }
    }
    // Ray's hash counts a directory whose every file is ignored; its zip leaves it out: refused, saying why.
    const ignored = tempDir('raysub-ray-ignored-');
    fs.writeFileSync(path.join(ignored, 'main.py'), 'print(1)\n');
    fs.writeFileSync(path.join(ignored, '.gitignore'), 'data/*\n');
    fs.mkdirSync(path.join(ignored, 'data'));
    fs.writeFileSync(path.join(ignored, 'data', 'big.bin'), 'ignored');
    const [ignoredName] = await rayPack([['dir', ignored, path.join(out, 'ignored.zip')]]);
    const res = await put(head, ignoredName as string, fs.readFileSync(path.join(out, 'ignored.zip')));
    expect(res).toMatchObject({ status: 400, code: 'INVALID_PACKAGE' });
    expect(res.message).toContain('exclude such a directory itself');
  });
});
