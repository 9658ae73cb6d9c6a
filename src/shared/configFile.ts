/**
 * The optional config file: YAML with a section per process, each key a flag's name without its
 * dashes. A flag beats its environment variable, which beats the file, which beats the default.
 *
 *   head:   { port: 8265, host: 0.0.0.0, tls-cert: /etc/raysub/head.pem, tls-key: ... }
 *   agent:  { sandbox: bwrap, kill-grace: 5, token-file: /etc/raysub/agent-token, ca: ... }
 *   client: { address: https://head:8265, token-file: ~/.raysub-token, ca: ~/raysub-ca.pem }
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { RaysubError } from './errors.js';

const scalar = z.union([z.string(), z.number(), z.boolean()]);
/** A section: known keys only (a misspelt key is an error, not silently ignored). */
const section = (keys: readonly string[]) =>
  z.object(Object.fromEntries(keys.map((k) => [k, k === 'resources' ? z.union([z.string(), z.record(z.string(), z.number())]) : scalar.optional()]))).partial().strict();

export const HEAD_KEYS = [
  'port', 'host', 'data-dir', 'log-level', 'max-package-size', 'heartbeat-ms', 'lease-ms', 'local-agent', 'tls-cert', 'tls-key',
  'max-log-size', 'job-ttl', 'max-finished-jobs', 'max-package-unpacked-size', 'max-package-entries', 'unused-package-ttl',
  'http-headers-timeout', 'http-request-timeout', 'http-keep-alive-timeout', 'http-idle-timeout', 'max-connections', 'max-connections-per-address',
  'fail-unschedulable', 'allow-driver-on-worker-nodes',
] as const;
export const AGENT_KEYS = [
  'address', 'token-file', 'ca', 'data-dir', 'log-level', 'node-name', 'work-dir', 'num-cpus', 'num-gpus', 'memory', 'resources', 'kill-grace', 'sandbox',
  'sandbox-interpreters', 'sandbox-bind', 'task-pids-max', 'task-open-files', 'sandbox-reuse', 'sandbox-seccomp', 'cache-limit',
  'max-package-size', 'max-package-unpacked-size', 'max-package-entries', 'unused-package-ttl',
] as const;
export const CLIENT_KEYS = ['address', 'token-file', 'ca', 'data-dir'] as const;

const fileSchema = z
  .object({ head: section(HEAD_KEYS), agent: section(AGENT_KEYS), client: section(CLIENT_KEYS) })
  .partial()
  .strict();

export type ConfigSection = Record<string, string | number | boolean | Record<string, number> | undefined>;
export interface ConfigFile {
  path: string | null;
  head: ConfigSection;
  agent: ConfigSection;
  client: ConfigSection;
}

export const EMPTY_CONFIG: ConfigFile = { path: null, head: {}, agent: {}, client: {} };

/** `~/x` -> the home directory's x (config files are written by hand). */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** The default place: $XDG_CONFIG_HOME/raysub/config.yaml, else ~/.config/raysub/config.yaml. */
export function defaultConfigPath(xdgConfigHome: string | undefined): string {
  return path.join(xdgConfigHome ?? path.join(os.homedir(), '.config'), 'raysub', 'config.yaml');
}

/** Read a config file. `explicit`: named by --config or RAYSUB_CONFIG, so it must exist. */
export function readConfigFile(file: string, explicit: boolean): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_CONFIG;
    throw new RaysubError('USAGE', `cannot read the config file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    // Loaded only when a config file exists: `raysub --help` does not pay for a YAML parser.
    const { parse } = createRequire(import.meta.url)('yaml') as typeof Yaml;
    raw = parse(text) ?? {};
  } catch (err) {
    throw new RaysubError('USAGE', `the config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    throw new RaysubError('USAGE', `the config file ${file}: ${where ? `${where}: ` : ''}${issue?.message ?? 'invalid'} (sections: head, agent, client; keys are flag names)`);
  }
  const d = parsed.data;
  return { path: file, head: d.head ?? {}, agent: d.agent ?? {}, client: d.client ?? {} };
}
