/**
 * Offline fixtures for runtime env tests: tiny wheels written by the test itself, a local index
 * server whose answers the test holds back, a tiny npm package, and an agent environment whose pip
 * sees only what the test provides.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { tempDir } from './cluster.js';

const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
dist, version, module, body, out = sys.argv[1:6]
name = f"{dist.replace('-', '_')}-{version}"
files = {
    f"{module}/__init__.py": body,
    f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: {dist}\\nVersion: {version}\\n",
    f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: raysub-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
path = f"{out}/{name}-py3-none-any.whl"
with zipfile.ZipFile(path, "w") as z:
    for f, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{f},sha256={digest},{len(data)}")
        z.writestr(f, data)
    record.append(f"{name}.dist-info/RECORD,,")
    z.writestr(f"{name}.dist-info/RECORD", "\\n".join(record) + "\\n")
print(path)
`;

/** Write a pure-Python wheel `<dist>-<version>-py3-none-any.whl` holding `<module>/__init__.py`. */
export function buildWheel(outDir: string, dist: string, version: string, module: string, body: string): string {
  fs.mkdirSync(outDir, { recursive: true });
  return execFileSync('python3', ['-c', WHEEL_SCRIPT, dist, version, module, body, outDir], { encoding: 'utf8' }).trim();
}

/**
 * The agent's environment for offline pip: no configuration files, the test's wheel directory as
 * `--find-links` and no index (or only the test's own `index`), no retries, no download cache.
 */
export function offlinePipEnv(wheelDir: string, index?: string): Record<string, string> {
  return {
    PIP_CONFIG_FILE: os.devNull,
    ...(index ? { PIP_INDEX_URL: index } : { PIP_NO_INDEX: '1' }),
    PIP_FIND_LINKS: wheelDir,
    PIP_RETRIES: '0',
    PIP_NO_CACHE_DIR: '1',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    npm_config_cache: tempDir('raysub-npm-cache-'),
    npm_config_offline: 'true',
  };
}

export interface HeldIndex {
  url: string;
  /** Requests seen so far, by path. */
  requests: string[];
  /** Answer every held and future request. */
  release(): void;
}

/**
 * A PEP 503 index on 127.0.0.1 serving the wheels in `wheelDir`, holding every answer until
 * `release()` (or forever), so a test can keep an env build in progress as long as it needs.
 */
export async function heldIndex(wheelDir: string): Promise<HeldIndex> {
  let released = false;
  const held: (() => void)[] = [];
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    const answer = (): void => {
      const wheels = fs.readdirSync(wheelDir).filter((f) => f.endsWith('.whl'));
      const project = /^\/simple\/([^/]+)\/?$/.exec(url)?.[1];
      const file = /^\/files\/([^/]+)$/.exec(url)?.[1];
      if (project) {
        const norm = (s: string): string => s.toLowerCase().replace(/[-_.]+/g, '-');
        const links = wheels.filter((w) => norm(w.split('-')[0] ?? '') === norm(project)).map((w) => `<a href="/files/${w}">${w}</a>`);
        res.writeHead(links.length ? 200 : 404, { 'content-type': 'text/html' }).end(`<html><body>${links.join('\n')}</body></html>`);
      } else if (file && wheels.includes(file)) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(fs.readFileSync(path.join(wheelDir, file)));
      } else res.writeHead(404).end();
    };
    if (released) answer();
    else held.push(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/simple`,
    requests,
    release() {
      released = true;
      for (const a of held.splice(0)) a();
    },
  };
}

/** A tiny npm package tarball (`npm pack`) exporting `value`. */
export function buildNpmTarball(outDir: string, name: string, value: string): string {
  const src = path.join(outDir, `${name}-src`);
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js' }));
  fs.writeFileSync(path.join(src, 'index.js'), `module.exports = ${JSON.stringify(value)};\n`);
  const file = execFileSync('npm', ['pack', '--silent', '--pack-destination', outDir], { cwd: src, encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  fs.rmSync(src, { recursive: true, force: true });
  return path.join(outDir, file);
}

/** Processes whose command line contains `marker` (to check installers are gone). */
export function processesMatching(marker: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes(marker)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export interface Gate {
  url: string;
  open(): void;
}

/**
 * A gate a job polls over loopback (the sandbox gives jobs a private /tmp, so a file would not
 * do): 503 until `open()`, 200 after.
 */
export async function httpGate(): Promise<Gate> {
  let open = false;
  const server = http.createServer((_req, res) => res.writeHead(open ? 200 : 503).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, open: () => (open = true) };
}
