/**
 * Options: a flag beats its environment variable, which beats the config file, which beats the
 * default (commander declares none). The in-process cases are table-driven; the end-to-end ones
 * show documented variables taking effect on a real head.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentOptionsFrom, clientSettingsFrom, DEFAULTS, headOptionsFrom, loadConfigFile } from '../src/shared/config.js';
import { readConfigFile } from '../src/shared/configFile.js';
import { runCli, spawnCli, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
});

function configFile(text: string): string {
  const file = path.join(tempDir('raysub-config-'), 'config.yaml');
  fs.writeFileSync(file, text);
  return file;
}

describe('options, in process', () => {
  const file = () => readConfigFile(configFile('head:\n  port: 7000\n  host: 0.0.0.0\nagent:\n  sandbox: none\n  kill-grace: 9\n'), true);
  const cases: { name: string; flags: Record<string, string>; env: Record<string, string>; port: number; host: string; sandbox: string; graceMs: number }[] = [
    { name: 'defaults', flags: {}, env: {}, port: DEFAULTS.port, host: DEFAULTS.host, sandbox: 'auto', graceMs: DEFAULTS.killGraceS * 1000 },
    { name: 'environment', flags: {}, env: { RAYSUB_SANDBOX: 'process', RAYSUB_KILL_GRACE_S: '7', RAYSUB_PORT: '7100' }, port: 7100, host: DEFAULTS.host, sandbox: 'process', graceMs: 7000 },
    { name: 'flags beat the environment', flags: { sandbox: 'bwrap', killGrace: '5', port: '7200' }, env: { RAYSUB_SANDBOX: 'process', RAYSUB_KILL_GRACE_S: '7' }, port: 7200, host: DEFAULTS.host, sandbox: 'bwrap', graceMs: 5000 },
  ];
  for (const c of cases) {
    it(`head: ${c.name}`, () => {
      Object.assign(process.env, c.env);
      const o = headOptionsFrom(c.flags, { path: null, head: {}, agent: {}, client: {} });
      expect([o.port, o.host, o.localAgent?.sandbox, o.killGraceMs, o.localAgent?.killGraceMs]).toEqual([c.port, c.host, c.sandbox, c.graceMs, c.graceMs]);
    });
  }

  it('the config file comes after flags and environment, before the defaults', () => {
    const f = file();
    let o = headOptionsFrom({}, f);
    expect([o.port, o.host, o.localAgent?.sandbox, o.killGraceMs]).toEqual([7000, '0.0.0.0', 'none', 9000]);
    process.env.RAYSUB_SANDBOX = 'process';
    o = headOptionsFrom({ port: '7300' }, f);
    expect([o.port, o.host, o.localAgent?.sandbox]).toEqual([7300, '0.0.0.0', 'process']);
  });

  it('refuses bad values and unknown keys with a message naming where they came from', () => {
    process.env.RAYSUB_KILL_GRACE_S = 'soon';
    expect(() => headOptionsFrom({}, { path: null, head: {}, agent: {}, client: {} })).toThrow(/RAYSUB_KILL_GRACE_S must be a number/);
    delete process.env.RAYSUB_KILL_GRACE_S;
    process.env.RAYSUB_SANDBOX = 'docker';
    expect(() => headOptionsFrom({}, { path: null, head: {}, agent: {}, client: {} })).toThrow(/RAYSUB_SANDBOX must be one of auto, bwrap, process, none/);
    expect(() => readConfigFile(configFile('head:\n  prot: 1\n'), true)).toThrow(/head: Unrecognized key.*prot/);
    expect(() => readConfigFile(configFile('head: [1\n'), true)).toThrow(/not valid YAML/);
    expect(() => loadConfigFile('/nonexistent/raysub.yaml')).toThrow(/cannot read the config file/);
    // A node name is never a path: it names the agent's work dir.
    delete process.env.RAYSUB_SANDBOX;
    for (const bad of ['../x', 'a/b', '..', 'x\u0000y']) {
      expect(() => headOptionsFrom({ nodeName: bad }, { path: null, head: {}, agent: {}, client: {} })).toThrow(/invalid node name.*node name is 1-128/);
    }
    expect(headOptionsFrom({ nodeName: 'gpu-1.rack_a' }, { path: null, head: {}, agent: {}, client: {} }).localAgent?.nodeName).toBe('gpu-1.rack_a');
  });

  it("the object store's pages: huge by default, small by flag or environment, anything else refused", () => {
    const none = { path: null, head: {}, agent: {}, client: {} };
    const agent = { address: 'http://127.0.0.1:1', token: 't' };
    expect(agentOptionsFrom(agent, none).objectStorePages).toBe('huge');
    expect(agentOptionsFrom({ ...agent, objectStorePages: 'small' }, none).objectStorePages).toBe('small');
    expect(headOptionsFrom({ objectStorePages: 'small' }, none).localAgent?.objectStorePages).toBe('small');
    process.env.RAYSUB_OBJECT_STORE_PAGES = 'small';
    expect(agentOptionsFrom(agent, none).objectStorePages).toBe('small');
    process.env.RAYSUB_OBJECT_STORE_PAGES = 'giant';
    expect(() => agentOptionsFrom(agent, none)).toThrow(/RAYSUB_OBJECT_STORE_PAGES must be one of huge, small/);
  });

  it('agents and clients read their token from a file, and warn about a token on the command line', () => {
    const dir = tempDir('raysub-token-');
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'from-file\n', { mode: 0o600 });
    const empty = { path: null, head: {}, agent: {}, client: {} };
    const fromFile = agentOptionsFrom({ address: 'http://127.0.0.1:1', tokenFile }, empty);
    expect([fromFile.token, fromFile.warnings]).toEqual(['from-file', []]);
    const fromFlag = agentOptionsFrom({ address: 'http://127.0.0.1:1', token: 'on-the-command-line' }, empty);
    expect(fromFlag.token).toBe('on-the-command-line');
    expect(fromFlag.warnings.join()).toMatch(/--token .*ps/);
    process.env.RAYSUB_TOKEN = 'from-env';
    expect(agentOptionsFrom({ address: 'http://127.0.0.1:1' }, empty).token).toBe('from-env');
    // The agent drops it from its environment once read: nothing it starts inherits it.
    expect(process.env.RAYSUB_TOKEN).toBeUndefined();
    fs.chmodSync(tokenFile, 0o644);
    process.env.RAYSUB_TOKEN_FILE = tokenFile;
    const client = clientSettingsFrom({}, empty);
    expect(client.token).toBe('from-file');
    expect(client.warnings.join()).toMatch(/can be read by other users/);
    expect(() => agentOptionsFrom({ address: 'http://127.0.0.1:1', token: 'a', tokenFile }, empty)).toThrow(/not both/);
    fs.writeFileSync(tokenFile, '\n');
    expect(() => clientSettingsFrom({}, empty)).toThrow(/is empty/);
  });
});

describe('options on a real head', () => {
  it('RAYSUB_SANDBOX=process raysub start --head runs its agent with the process sandbox', async () => {
    const head = await startHead({ numCpus: 1, env: { RAYSUB_SANDBOX: 'process' } });
    const res = await runCli(['nodes', '--json'], { env: head.env });
    expect(res.code, res.stderr).toBe(0);
    const nodes = JSON.parse(res.stdout) as { nodes: { sandbox: { mode: string } }[] };
    expect(nodes.nodes.map((n) => n.sandbox.mode)).toEqual(['process']);
  });

  it('RAYSUB_KILL_GRACE_S sets how long a stopped task may take before SIGKILL', async () => {
    const head = await startHead({ numCpus: 1, env: { RAYSUB_KILL_GRACE_S: '6' } });
    const dir = workingDir({ 'main.py': 'import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))\nprint("ready", flush=True)\nwhile True: time.sleep(0.1)\n' });
    const submit = spawnCli(['job', 'submit', '--submission-id', 'grace', '--working-dir', dir, '--', 'python3', 'main.py'], { env: head.env });
    await waitFor(() => submit.output().includes('ready'), { what: 'the job to start', timeoutMs: 60_000 });
    const started = Date.now();
    const stop = await runCli(['job', 'stop', 'grace'], { env: head.env });
    const took = Date.now() - started;
    expect(stop.code, stop.stderr).toBe(0);
    expect((await submit.result).code).toBe(130);
    // The default grace is 3 s: a task that ignores SIGTERM now lives about 6 s.
    expect(took).toBeGreaterThanOrEqual(5500);
  });
});
