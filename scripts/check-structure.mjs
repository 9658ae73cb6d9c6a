#!/usr/bin/env node
// The house rules `npm run lint` checks beyond eslint and tsc:
//   - no source file over 400 lines (src/, native/, scripts/; vendored code aside);
//   - no import circle among the TypeScript sources (type-only imports count: a circle of types is
//     a shared type declared in the file that uses the other) nor among the Python worker library's
//     modules (imports inside functions count too).
// Prints each breach and exits 1 when there is one.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const MAX_LINES = 400;
const SOURCE = /\.(ts|tsx|mjs|js|py|c|h)$/;
const problems = [];

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === '_vendor' || e.name === '__pycache__') continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (SOURCE.test(e.name)) out.push(p);
  }
  return out;
}

const files = ['src', 'native', 'scripts'].flatMap((d) => (fs.existsSync(path.join(root, d)) ? walk(path.join(root, d)) : []));
const rel = (f) => path.relative(root, f);

for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (lines > MAX_LINES) problems.push(`${rel(f)}: ${lines} lines (at most ${MAX_LINES}: split it by concern)`);
}

/** Relative imports of a TypeScript file, resolved to files of the tree. */
function tsImports(file, text) {
  const out = [];
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2];
    const base = path.resolve(path.dirname(file), spec);
    const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.js$/, '.tsx'), `${base}.ts`, path.join(base, 'index.ts')];
    const hit = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

/** Imports of a module of the Python library (`from . import x`, `from .x import y`, `import raysub.x`). */
function pyImports(file, text, pkgRoot) {
  const out = [];
  const pkgOf = (f) => path.dirname(f);
  const resolveMod = (dir, dotted) => {
    const base = path.join(dir, ...dotted.split('.').filter(Boolean));
    for (const c of [`${base}.py`, path.join(base, '__init__.py')]) if (fs.existsSync(c)) return c;
    return null;
  };
  for (const m of text.matchAll(/^\s*from\s+(\.+)([\w.]*)\s+import\s+([^\n#]+)/gm)) {
    let dir = pkgOf(file);
    for (let i = 1; i < m[1].length; i++) dir = path.dirname(dir);
    if (m[2]) {
      const hit = resolveMod(dir, m[2]);
      if (hit) out.push(hit);
    } else {
      for (const name of m[3].replace(/[()]/g, '').split(',')) {
        const hit = resolveMod(dir, name.trim().split(/\s+/)[0] ?? '');
        if (hit) out.push(hit);
      }
    }
  }
  for (const m of text.matchAll(/^\s*(?:from|import)\s+raysub((?:\.\w+)*)\b/gm)) {
    const hit = resolveMod(pkgRoot, m[1].slice(1));
    if (hit) out.push(hit);
  }
  // A package's __init__.py hands names on: an import of it is not an import of what it re-exports.
  return out.filter((f) => f !== file && !f.endsWith('__init__.py'));
}

function circles(graph) {
  // Tarjan's strongly connected components; each of more than one file is a circle.
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const found = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) found.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

const graph = new Map();
const pyRoot = path.join(root, 'src/worker/python/raysub');
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  if (/\.tsx?$/.test(f)) graph.set(f, tsImports(f, text));
  else if (f.endsWith('.py') && f.startsWith(pyRoot + path.sep)) graph.set(f, pyImports(f, text, pyRoot));
}
for (const comp of circles(graph)) {
  const names = comp.map(rel).sort();
  const ties = [];
  for (const a of comp) for (const b of graph.get(a) ?? []) if (comp.includes(b)) ties.push(`${rel(a)} -> ${rel(b)}`);
  problems.push(`import circle of ${comp.length} files: ${names.join(', ')}\n    ${ties.sort().join('\n    ')}`);
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-structure: ${p}`);
  process.exit(1);
}
console.log(`check-structure: ${files.length} source files, none over ${MAX_LINES} lines, no import circle`);
