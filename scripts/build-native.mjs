#!/usr/bin/env node
// Build native/*.c (raysub-init.c and its parts) into dist/native/raysub-init with the first C compiler found on PATH
// ($CC, musl-gcc, cc, gcc, clang), statically linked where the C library allows it. musl comes
// first: a static glibc program spends ~0.5 ms of CPU at every start probing the CPU's caches
// (cpuid, which a virtual machine traps), ~5 times what the rest of raysub-init costs. Without a
// compiler the build still succeeds: agents then start sandboxed workers through setpriv and sh.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const native = path.join(root, 'native');
const files = fs.readdirSync(native).filter((f) => f.endsWith('.c') || f.endsWith('.h')).map((f) => path.join(native, f));
const sources = files.filter((f) => f.endsWith('.c'));
const out = path.join(root, 'dist', 'native', 'raysub-init');
fs.mkdirSync(path.dirname(out), { recursive: true });

const newest = Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest;
if (!fresh) {
  const compilers = [process.env.CC, 'musl-gcc', 'cc', 'gcc', 'clang'].filter(Boolean);
  const flags = ['-O2', '-s', '-Wall', '-Wextra', '-Werror', '-o', `${out}.tmp`, ...sources];
  let built = false;
  let why = 'no C compiler found (set CC)';
  for (const cc of compilers) {
    for (const extra of [['-static'], []]) {
      const r = spawnSync(cc, [...extra, ...flags], { encoding: 'utf8' });
      if (r.error) break; // this compiler does not exist
      if (r.status === 0) {
        built = true;
        break;
      }
      why = `${cc} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' ')}`;
    }
    if (built) break;
  }
  if (built) {
    fs.renameSync(`${out}.tmp`, out);
  } else {
    fs.rmSync(`${out}.tmp`, { force: true });
    fs.rmSync(out, { force: true });
    console.warn(`raysub-init not built (${why}): sandboxed workers will start through setpriv and sh`);
  }
}
