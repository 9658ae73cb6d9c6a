/**
 * Options compiled once at start-up. This is the only module that reads `process.env`, and the
 * only place defaults live: each option comes from its flag, else its environment variable, else
 * the config file, else the default below (commander declares none, so the environment works).
 */
import os from 'node:os';
import path from 'node:path';
import { defaultConfigPath, expandHome, readConfigFile, type ConfigFile, type ConfigSection } from './configFile.js';
import { dataDirLayout } from './dataDir.js';
import { DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_BYTES, type ArchiveCaps } from './archive/caps.js';
import { RaysubError } from './errors.js';
import { NODE_NAME_RULE, nodeNameSchema } from './protocol/agents.js';
import { bytes, num, oneOf, parseBytes, parseDuration, parseList, parseMemory, parseResources, readPem } from './optionParsers.js';
import type { AgentOptions, ClientFlags, ClientSettings, HeadOptions, LocalAgentOptions, LogLevel, LogOptions, RetentionOptions, SandboxChoice, StartFlags, TlsFiles } from './optionTypes.js';
import { connectionLimits, type HttpLimits } from './httpLimits.js';
import { readCredentials, type Credentials, type Raw } from './credentials.js';

/** A memory size flag: a bare number under 1 MiB is refused (optionParsers.ts). */
const memoryOption = (raw: Raw | undefined): number | undefined => (raw ? parseMemory(raw.from.replace(/^--/, ''), raw.value) : undefined);

export { RAYSUB_VERSION, COMPATIBLE_RAY_VERSION } from './version.js';
export type { HttpLimits } from './httpLimits.js';
export type { Credentials } from './credentials.js';
export { parseBytes, parseDuration, parseMemory } from './optionParsers.js';
export type * from './optionTypes.js';

/** Every default, in one place (README's CLI table and docs/security.md quote them). */
export const DEFAULTS = {
  port: 8265,
  host: '127.0.0.1',
  logLevel: 'info' as LogLevel,
  maxPackageBytes: 512 * 1024 * 1024,
  /** A package no job, schedule or running task uses is deleted this long after its last use. */
  unusedPackageTtlS: 600,
  heartbeatMs: 1000,
  leaseMs: 15_000,
  pollWaitMs: 20_000,
  starvationS: 60,
  /** How long a queued job no alive node could ever run waits for one to join before it fails. */
  unschedulableGraceS: 60,
  killGraceS: 3,
  /** The disk floor of a node's work dir: the smaller of 1 GiB and 5% of its file system (diskGuard.ts). */
  minFreeDisk: '1G,5%',
  sandbox: 'auto' as SandboxChoice,
  maxBufferedLogBytes: 8 * 1024 * 1024,
  cacheLimitBytes: 10 * 1024 ** 3,
  /** The shared-memory object store: a tmpfs directory, and the share of the node's memory its objects may fill (as Ray's 30%). */
  objectStoreDir: '/dev/shm',
  objectStoreMemoryFraction: 0.3,
  objectStorePages: 'huge' as 'huge' | 'small',
  sandboxInterpreters: 'python3,python,node',
  taskPidsMax: 4096,
  taskOpenFiles: 4096,
  /** The head's HTTP server (docs/security.md#the-heads-http-server). */
  httpHeadersTimeoutS: 15,
  httpRequestTimeoutS: 600,
  httpKeepAliveTimeoutS: 10,
  httpIdleTimeoutS: 600,
  maxConnectionsPerAddress: 256,
  /** Client commands. */
  stopTimeoutS: 30,
  listLimit: 50,
  statusIntervalS: 2,
  entrypointNumCpus: 1,
  retryBackoffS: 1,
  /** Dashboard sessions (docs/security.md#the-dashboard): a lifetime, an idle limit, and a login link's life. */
  dashboardSessionTtlS: 12 * 3600,
  dashboardSessionIdleS: 2 * 3600,
  dashboardLoginCodeTtlS: 120,
  /** `raysub cert create`: how long its certificates are valid. */
  certDays: 825,
} as const;
export const DEFAULT_PORT = DEFAULTS.port;
export const DEFAULT_MAX_PACKAGE_BYTES = DEFAULTS.maxPackageBytes;
export const DEFAULT_MAX_LOG_BYTES = 100 * 1024 * 1024;
export const DEFAULT_LOG_OPTIONS: LogOptions = {
  keepaliveMs: 5000,
  maxJobBytes: DEFAULT_MAX_LOG_BYTES,
  droppedTailBytes: 64 * 1024,
  rayResponseMaxBytes: 64 * 1024 * 1024,
};
export const DEFAULT_JOB_TTL_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_MAX_FINISHED_JOBS = 1000;
export const DEFAULT_RETENTION_OPTIONS: RetentionOptions = { jobTtlMs: DEFAULT_JOB_TTL_MS, maxFinishedJobs: DEFAULT_MAX_FINISHED_JOBS, sweepMs: 60_000 };
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function defaultDataDir(): string {
  return env('RAYSUB_DATA_DIR') ?? path.join(os.homedir(), '.raysub');
}

export function logLevelFromEnv(fallback: LogLevel = DEFAULTS.logLevel): LogLevel {
  const v = env('RAYSUB_LOG_LEVEL');
  return v && (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : fallback;
}

/** The config file named by --config or RAYSUB_CONFIG, else the default one if it exists. */
export function loadConfigFile(flag: string | undefined): ConfigFile {
  const named = flag ?? env('RAYSUB_CONFIG');
  if (named) return readConfigFile(path.resolve(expandHome(named)), true);
  return readConfigFile(defaultConfigPath(env('XDG_CONFIG_HOME')), false);
}


/** Looks an option up: its flag, its environment variable, then the config file's sections. */
class Lookup {
  constructor(
    private readonly flags: Record<string, unknown>,
    private readonly file: ConfigFile,
    private readonly sections: readonly ConfigSection[],
  ) {}

  get(flag: string, envName?: string): Raw | undefined {
    const key = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const f = this.flags[key];
    if (typeof f === 'string') return { value: f, from: `--${flag}` };
    const e = envName ? env(envName) : undefined;
    if (e !== undefined && envName) return { value: e, from: envName };
    for (const s of this.sections) {
      const v = s[flag];
      if (v !== undefined) return { value: typeof v === 'object' ? JSON.stringify(v) : String(v), from: `${flag} in ${this.file.path ?? 'the config file'}` };
    }
    return undefined;
  }

  /** A boolean flag (`--no-x` gives false); the environment and file say 0/1, true/false. */
  bool(flag: string, envName: string | undefined, fallback: boolean): boolean {
    const key = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (this.flags[key] === false) return false;
    const raw = this.get(flag, envName);
    if (!raw) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw.value)) return true;
    if (/^(0|false|no|off)$/i.test(raw.value)) return false;
    throw new RaysubError('USAGE', `${raw.from} must be true or false, got "${raw.value}"`);
  }

  path(flag: string, envName?: string): string | undefined {
    const raw = this.get(flag, envName);
    return raw ? path.resolve(expandHome(raw.value)) : undefined;
  }
}

function logLevel(l: Lookup): LogLevel {
  return oneOf(l.get('log-level', 'RAYSUB_LOG_LEVEL'), LOG_LEVELS, DEFAULTS.logLevel);
}

/** The node's stop grace period: its flag, RAYSUB_KILL_GRACE_S, or Ray's RAY_JOB_STOP_WAIT_TIME_S (a job's own wins). */
function killGraceMs(l: Lookup): number {
  const ray = env('RAY_JOB_STOP_WAIT_TIME_S');
  return (num(l.get('kill-grace', 'RAYSUB_KILL_GRACE_S')) ?? num(ray === undefined ? undefined : { value: ray, from: 'RAY_JOB_STOP_WAIT_TIME_S' }) ?? DEFAULTS.killGraceS) * 1000;
}

function packageCaps(l: Lookup): ArchiveCaps {
  const maxEntries = num(l.get('max-package-entries', 'RAYSUB_MAX_PACKAGE_ENTRIES'), 1) ?? DEFAULT_MAX_ENTRIES;
  return {
    maxBytes: bytes(l.get('max-package-unpacked-size', 'RAYSUB_MAX_PACKAGE_UNPACKED_BYTES')) ?? DEFAULT_MAX_UNPACKED_BYTES,
    maxEntries: Math.floor(maxEntries),
  };
}

function unusedPackageTtlMs(l: Lookup): number {
  const raw = l.get('unused-package-ttl', 'RAYSUB_UNUSED_PACKAGE_TTL');
  const ms = (raw ? parseDuration(raw.from.replace(/^--/, ''), raw.value) : undefined) ?? DEFAULTS.unusedPackageTtlS * 1000;
  if (ms < 1000) throw new RaysubError('USAGE', `${raw?.from ?? '--unused-package-ttl'} must be at least 1s`);
  return ms;
}

function agentBase(l: Lookup, workDir: string, nodeName: string, hiddenPaths: string[]): LocalAgentOptions {
  if (!nodeNameSchema.safeParse(nodeName).success) throw new RaysubError('USAGE', `invalid node name "${nodeName}": ${NODE_NAME_RULE}`);
  const numGpus = num(l.get('num-gpus', 'RAYSUB_NUM_GPUS'));
  if (numGpus !== undefined && !Number.isInteger(numGpus)) throw new RaysubError('USAGE', '--num-gpus must be a whole number');
  const memory = memoryOption(l.get('memory', 'RAYSUB_MEMORY')) ?? os.totalmem();
  const storeDir = l.get('object-store-dir', 'RAYSUB_OBJECT_STORE_DIR')?.value ?? DEFAULTS.objectStoreDir;
  return {
    workDir,
    nodeName,
    nodeNameGiven: l.get('node-name', 'RAYSUB_NODE_NAME') !== undefined,
    numCpus: num(l.get('num-cpus', 'RAYSUB_NUM_CPUS')) ?? os.availableParallelism(),
    numGpus,
    memory,
    objectStoreDir: storeDir === '' || storeDir === 'none' ? null : path.resolve(expandHome(storeDir)),
    objectStoreMemory: bytes(l.get('object-store-memory', 'RAYSUB_OBJECT_STORE_MEMORY')) ?? Math.floor(memory * DEFAULTS.objectStoreMemoryFraction),
    objectStorePages: oneOf(l.get('object-store-pages', 'RAYSUB_OBJECT_STORE_PAGES'), ['huge', 'small'] as const, DEFAULTS.objectStorePages),
    resources: parseResources(l.get('resources', 'RAYSUB_RESOURCES')),
    killGraceMs: killGraceMs(l),
    sandbox: oneOf(l.get('sandbox', 'RAYSUB_SANDBOX'), ['auto', 'bwrap', 'process', 'none'] as const, DEFAULTS.sandbox),
    logLevel: logLevel(l),
    maxBufferedLogBytes: DEFAULTS.maxBufferedLogBytes,
    hiddenPaths,
    cacheLimitBytes: bytes(l.get('cache-limit', 'RAYSUB_CACHE_LIMIT')) ?? DEFAULTS.cacheLimitBytes,
    sandboxInterpreters: parseList(l.get('sandbox-interpreters', 'RAYSUB_SANDBOX_INTERPRETERS')?.value ?? DEFAULTS.sandboxInterpreters),
    sandboxBinds: parseList(l.get('sandbox-bind', 'RAYSUB_SANDBOX_BIND')?.value ?? '').map((p) => path.resolve(p)),
    taskPidsMax: Math.floor(num(l.get('task-pids-max', 'RAYSUB_TASK_PIDS_MAX'), 16) ?? DEFAULTS.taskPidsMax),
    taskOpenFiles: Math.floor(num(l.get('task-open-files', 'RAYSUB_TASK_OPEN_FILES'), 64) ?? DEFAULTS.taskOpenFiles),
    sandboxReuse: l.bool('sandbox-reuse', 'RAYSUB_SANDBOX_REUSE', true),
    sandboxSeccomp: l.bool('sandbox-seccomp', 'RAYSUB_SANDBOX_SECCOMP', true),
    packageCaps: packageCaps(l),
    maxPackageBytes: bytes(l.get('max-package-size', 'RAYSUB_MAX_PACKAGE_BYTES')) ?? DEFAULTS.maxPackageBytes,
    unusedPackageTtlMs: unusedPackageTtlMs(l),
    minFreeDisk: minFreeDisk(l),
  };
}

/** `--min-free-disk`: a size, a percentage of the file system, or both (`1G,5%`: the smaller); `0` turns the guard off. */
function minFreeDisk(l: Lookup): { bytes: number | null; fraction: number | null } {
  const raw = l.get('min-free-disk', 'RAYSUB_MIN_FREE_DISK') ?? { value: DEFAULTS.minFreeDisk, from: '--min-free-disk' };
  const out: { bytes: number | null; fraction: number | null } = { bytes: null, fraction: null };
  for (const part of parseList(raw.value)) {
    const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(part);
    if (pct) {
      const f = Number(pct[1]) / 100;
      if (f > 0.5) throw new RaysubError('USAGE', `${raw.from} ${part}: at most 50%`);
      out.fraction = f;
    } else if (part === '0') {
      out.bytes = 0;
    } else {
      out.bytes = parseBytes(raw.from.replace(/^--/, ''), part) ?? null;
    }
  }
  if (out.bytes === null && out.fraction === null) throw new RaysubError('USAGE', `${raw.from} must be a size (1G), a percentage (5%) or both (1G,5%)`);
  return out;
}


function tlsFiles(l: Lookup): TlsFiles | null {
  const certFile = l.path('tls-cert', 'RAYSUB_TLS_CERT');
  const keyFile = l.path('tls-key', 'RAYSUB_TLS_KEY');
  if (!certFile && !keyFile) return null;
  if (!certFile || !keyFile) throw new RaysubError('USAGE', 'TLS needs both --tls-cert FILE and --tls-key FILE');
  return { certFile, keyFile, cert: readPem(certFile, 'the certificate'), key: readPem(keyFile, 'the private key') };
}

export function headOptionsFrom(flags: StartFlags, file: ConfigFile = loadConfigFile(flags.config)): HeadOptions {
  const l = new Lookup(flags as Record<string, unknown>, file, [file.head, file.agent]);
  const dataDir = l.path('data-dir', 'RAYSUB_DATA_DIR') ?? path.resolve(defaultDataDir());
  const heartbeatIntervalMs = num(l.get('heartbeat-ms', 'RAYSUB_HEARTBEAT_MS'), 10) ?? DEFAULTS.heartbeatMs;
  const leaseMs = num(l.get('lease-ms', 'RAYSUB_LEASE_MS'), 100) ?? DEFAULTS.leaseMs;
  const secs = (flag: string, envName: string, fallback: number): number => (num(l.get(flag, envName)) ?? fallback) * 1000;
  const nodeName = l.get('node-name', 'RAYSUB_NODE_NAME')?.value ?? os.hostname();
  return {
    host: l.get('host', 'RAYSUB_HOST')?.value ?? DEFAULTS.host,
    port: num(l.get('port', 'RAYSUB_PORT')) ?? DEFAULTS.port,
    dataDir,
    logLevel: logLevel(l),
    maxPackageBytes: bytes(l.get('max-package-size', 'RAYSUB_MAX_PACKAGE_BYTES')) ?? DEFAULTS.maxPackageBytes,
    packageCaps: packageCaps(l),
    unusedPackageTtlMs: unusedPackageTtlMs(l),
    heartbeatIntervalMs,
    leaseMs: Math.max(leaseMs, heartbeatIntervalMs * 3),
    pollWaitMs: DEFAULTS.pollWaitMs,
    starvationMs: (num(l.get('starvation-s', 'RAYSUB_STARVATION_S')) ?? DEFAULTS.starvationS) * 1000,
    unschedulableGraceMs: (num(l.get('unschedulable-grace-s', 'RAYSUB_UNSCHEDULABLE_GRACE_S')) ?? DEFAULTS.unschedulableGraceS) * 1000,
    // Set flags are `true` (Lookup.bool reads only a `--no-` flag's false).
    failUnschedulable: flags.failUnschedulable === true || l.bool('fail-unschedulable', 'RAYSUB_FAIL_UNSCHEDULABLE', false),
    allowDriverOnWorkerNodes: flags.allowDriverOnWorkerNodes === true || l.bool('allow-driver-on-worker-nodes', 'RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES', false),
    killGraceMs: killGraceMs(l),
    tls: tlsFiles(l),
    logs: logOptionsFrom(l),
    retention: retentionOptionsFrom(l),
    http: {
      headersTimeoutMs: secs('http-headers-timeout', 'RAYSUB_HTTP_HEADERS_TIMEOUT_S', DEFAULTS.httpHeadersTimeoutS),
      requestTimeoutMs: secs('http-request-timeout', 'RAYSUB_HTTP_REQUEST_TIMEOUT_S', DEFAULTS.httpRequestTimeoutS),
      keepAliveTimeoutMs: secs('http-keep-alive-timeout', 'RAYSUB_HTTP_KEEP_ALIVE_TIMEOUT_S', DEFAULTS.httpKeepAliveTimeoutS),
      idleTimeoutMs: secs('http-idle-timeout', 'RAYSUB_HTTP_IDLE_TIMEOUT_S', DEFAULTS.httpIdleTimeoutS),
      ...connectionLimits(num(l.get('max-connections', 'RAYSUB_MAX_CONNECTIONS'), 1), num(l.get('max-connections-per-address', 'RAYSUB_MAX_CONNECTIONS_PER_ADDRESS'), 1), DEFAULTS.maxConnectionsPerAddress),
    },
    localAgent: l.bool('local-agent', undefined, true) ? agentBase(l, dataDirLayout(dataDir).localAgent, nodeName, [dataDir]) : null,
  };
}

function logOptionsFrom(l: Lookup): LogOptions {
  return {
    keepaliveMs: Math.max(10, num(l.get('log-keepalive-ms', 'RAYSUB_LOG_KEEPALIVE_MS')) ?? DEFAULT_LOG_OPTIONS.keepaliveMs),
    maxJobBytes: bytes(l.get('max-log-size', 'RAYSUB_MAX_LOG_SIZE')) ?? DEFAULT_LOG_OPTIONS.maxJobBytes,
    droppedTailBytes: Math.max(1024, num(l.get('log-dropped-tail-bytes', 'RAYSUB_LOG_DROPPED_TAIL_BYTES')) ?? DEFAULT_LOG_OPTIONS.droppedTailBytes),
    rayResponseMaxBytes: Math.max(1024, num(l.get('ray-logs-max-bytes', 'RAYSUB_RAY_LOGS_MAX_BYTES')) ?? DEFAULT_LOG_OPTIONS.rayResponseMaxBytes),
  };
}

function retentionOptionsFrom(l: Lookup): RetentionOptions {
  const ttl = l.get('job-ttl', 'RAYSUB_JOB_TTL');
  const jobTtlMs = (ttl ? parseDuration(ttl.from.replace(/^--/, ''), ttl.value) : undefined) ?? DEFAULT_JOB_TTL_MS;
  const maxFinishedJobs = num(l.get('max-finished-jobs', 'RAYSUB_MAX_FINISHED_JOBS'));
  if (maxFinishedJobs !== undefined && !Number.isInteger(maxFinishedJobs)) throw new RaysubError('USAGE', '--max-finished-jobs must be a whole number');
  // Look often enough that a job outlives its TTL by at most a quarter of it (and at most a minute).
  const sweepMs = num(l.get('retention-sweep-ms', 'RAYSUB_RETENTION_SWEEP_MS')) ?? Math.min(60_000, Math.max(1000, jobTtlMs > 0 ? jobTtlMs / 4 : 60_000));
  return { jobTtlMs, maxFinishedJobs: maxFinishedJobs ?? DEFAULT_MAX_FINISHED_JOBS, sweepMs: Math.max(50, sweepMs) };
}

/** The HTTP limits with every default (for heads built without start-up options, as in tests). */
export function defaultHttpLimits(): HttpLimits {
  return {
    headersTimeoutMs: DEFAULTS.httpHeadersTimeoutS * 1000,
    requestTimeoutMs: DEFAULTS.httpRequestTimeoutS * 1000,
    keepAliveTimeoutMs: DEFAULTS.httpKeepAliveTimeoutS * 1000,
    idleTimeoutMs: DEFAULTS.httpIdleTimeoutS * 1000,
    ...connectionLimits(undefined, undefined, DEFAULTS.maxConnectionsPerAddress),
  };
}

export function agentOptionsFrom(flags: StartFlags, file: ConfigFile = loadConfigFile(flags.config)): AgentOptions {
  const l = new Lookup(flags as Record<string, unknown>, file, [file.agent]);
  const address = l.get('address', 'RAYSUB_ADDRESS');
  if (!address) throw new RaysubError('USAGE', "an agent needs the head's address: --address URL");
  const creds = credentialsFor(l, 'an agent needs its token: --token-file FILE (or RAYSUB_TOKEN_FILE, or RAYSUB_TOKEN)');
  if (!creds.token) throw new RaysubError('USAGE', 'an agent needs its token: --token-file FILE (or RAYSUB_TOKEN_FILE, or RAYSUB_TOKEN)');
  const dataDir = l.path('data-dir', 'RAYSUB_DATA_DIR') ?? path.resolve(defaultDataDir());
  const name = l.get('node-name', 'RAYSUB_NODE_NAME')?.value;
  const workDir = l.path('work-dir', 'RAYSUB_WORK_DIR') ?? path.join(dataDirLayout(dataDir).agents, sanitize(name ?? os.hostname()));
  return {
    ...agentBase(l, workDir, name ?? os.hostname(), []),
    address: normaliseAddress(address.value),
    token: creds.token,
    ca: creds.ca,
    warnings: creds.warnings,
  };
}

/** The token (flag, token file, environment, or the config file's token file) and the CA to trust. */
function credentialsFor(l: Lookup, missing: string | null): Credentials {
  const file = (raw: Raw | undefined): Raw | undefined => (raw ? { ...raw, value: path.resolve(expandHome(raw.value)) } : undefined);
  const creds = readCredentials({
    token: l.get('token', 'RAYSUB_TOKEN'),
    tokenFile: file(l.get('token-file', 'RAYSUB_TOKEN_FILE')),
    ca: file(l.get('ca', 'RAYSUB_CA')),
    missing,
  });
  // Children of this process (tools it runs, jobs' installers) must never inherit it.
  delete process.env.RAYSUB_TOKEN;
  return creds;
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** "host:port" and "ray://host:port" become http URLs, as Ray's clients do. */
export function normaliseAddress(address: string): string {
  let a = address.trim();
  if (a.startsWith('ray://')) a = 'http://' + a.slice('ray://'.length).replace(/:10001$/, ':8265');
  if (!/^[a-z]+:\/\//i.test(a)) a = 'http://' + a;
  return a.replace(/\/+$/, '');
}


/** What a client command takes from its flags, environment and config file. */
export function clientSettingsFrom(flags: ClientFlags, file: ConfigFile = loadConfigFile(flags.config)): ClientSettings {
  const l = new Lookup(flags as Record<string, unknown>, file, [file.client]);
  const address = l.get('address', 'RAYSUB_ADDRESS') ?? l.get('address', 'RAY_ADDRESS');
  const creds = credentialsFor(l, null);
  return {
    address: address?.value,
    token: creds.token,
    ca: creds.ca,
    dataDir: l.path('data-dir', 'RAYSUB_DATA_DIR') ?? path.resolve(defaultDataDir()),
    headers: flags.headers ?? env('RAY_JOB_HEADERS'),
    headersFrom: flags.headers ? '--headers' : 'RAY_JOB_HEADERS',
    noColor: env('NO_COLOR') !== undefined || env('TERM') === 'dumb',
    isTTY: Boolean(process.stdout.isTTY),
    followIdleMs: Math.max(100, num(l.get('follow-idle-ms', 'RAYSUB_FOLLOW_IDLE_MS')) ?? 30_000),
    unreachableTimeoutMs: Math.max(0, num(l.get('unreachable-timeout-s', 'RAYSUB_UNREACHABLE_TIMEOUT_S')) ?? 300) * 1000,
    connectRetryMs: Math.max(0, num(l.get('connect-retry-s', 'RAYSUB_CONNECT_RETRY_S')) ?? 0.5) * 1000,
    warnings: creds.warnings,
  };
}

/** Colour is off with NO_COLOR or TERM=dumb. */
export function noColorFromEnv(): boolean {
  return env('NO_COLOR') !== undefined || env('TERM') === 'dumb';
}

/** The agent's own environment, for passing PATH and the like on to tasks (never expanded into them). */
export function agentProcessEnv(): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  return out;
}
