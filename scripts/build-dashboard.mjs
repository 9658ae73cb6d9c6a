// Build step: bundle the web dashboard (src/dashboard, Preact) with esbuild into dist/dashboard,
// names carrying their content hash, and write the index.html the head serves.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const out = path.join(root, 'dist', 'dashboard');
fs.rmSync(out, { recursive: true, force: true });

const result = await build({
  entryPoints: [path.join(root, 'src', 'dashboard', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: path.join(out, 'assets'),
  entryNames: 'app-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((f) => path.relative(out, path.resolve(root, f)));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`dashboard build: expected a .js and a .css output, got ${outputs.join(', ')}`);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>raysub</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/${css}">
<script type="module" src="/${js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The raysub dashboard needs JavaScript. The CLI (raysub status, raysub job list) shows the same.</noscript>
</body>
</html>
`;
fs.writeFileSync(path.join(out, 'index.html'), html);
const size = (f) => fs.statSync(path.join(out, f)).size;
process.stdout.write(`dashboard: ${js} (${size(js)} bytes), ${css} (${size(css)} bytes)\n`);
