/**
 * Options compiled once at start-up from flags, environment and defaults. This is the only module
 * that reads `process.env`; everything else receives an immutable options object.
 */
import os from 'node:os';
import path from 'node:path';
import { RaysubError } from './errors.js';
import type { ResourceMap } from './resources.js';

export const RAYSUB_VERSION = '0.1.0';
/** The Ray version the head reports, so Ray's clients enable every feature of API v4. */
export const COMPATIBLE_RAY_VERSION = '2.58.0';
export const DEFAULT_PORT = 8265;
export const DEFAULT_MAX_PACKAGE_BYTES = 512 * 1024 * 1024;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

function envNumber(name: string): number | undefined {
  const value = env(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new RaysubError('USAGE', `${name} must be a number, got "${value}"`);
  return n;
}

export function defaultDataDir(): string {
  return env('RAYSUB_DATA_DIR') ?? path.join(os.homedir(), '.raysub');
}

export function logLevelFromEnv(fallback: LogLevel = 'info'): LogLevel {
  return (env('RAYSUB_LOG_LEVEL') as LogLevel | undefined) ?? fallback;
}

export interface AgentOptions {
  readonly address: string;
  readonly token: string;
  readonly workDir: string;
  readonly nodeName: string;
  readonly numCpus: number;
  readonly numGpus: number | undefined; // undefined: detect with nvidia-smi
  readonly memory: number;
  readonly resources: ResourceMap;
  readonly killGraceMs: number;
  readonly sandbox: 'auto' | 'bwrap' | 'process' | 'none';
  readonly logLevel: LogLevel;
  /** Bytes of undelivered output kept in memory per task before spilling to disk. */
  readonly maxBufferedLogBytes: number;
  /** Directories the head must never expose to a worker (its data dir, for the embedded agent). */
  readonly hiddenPaths: readonly string[];
  readonly cacheLimitBytes: number;
  /** Interpreters whose real installations workers see (read-only), linked first on their PATH. */
  readonly sandboxInterpreters: readonly string[];
  /** Extra host paths workers may read. */
  readonly sandboxBinds: readonly string[];
  /** Processes and threads one task may have at once. */
  readonly taskPidsMax: number;
  /** Open files one task process may have (RLIMIT_NOFILE). */
  readonly taskOpenFiles: number;
  /** A job's consecutive tasks on this node may run in one sandbox, emptied between them. */
  readonly sandboxReuse: boolean;
  /** Workers get the seccomp deny list (docs/sandbox.md); false: only new namespaces are refused. */
  readonly sandboxSeccomp: boolean;
}

/** How the head stores and serves logs. */
export interface LogOptions {
  /** Keep-alive interval of log streams and WebSocket tails while a job is quiet or queued. */
  readonly keepaliveMs: number;
  /** Most bytes of output a job's logs keep (0: no cap); the beginning is kept. */
  readonly maxJobBytes: number;
  /** Bytes of the end of each attempt's dropped output kept past the cap. */
  readonly droppedTailBytes: number;
  /** Most bytes of log text in Ray's `GET /api/jobs/{id}/logs` answer (the end of the log). */
  readonly rayResponseMaxBytes: number;
}

/** How long the head keeps finished jobs and their logs. */
export interface RetentionOptions {
  /** Finished jobs are deleted this long after they ended (0: kept until deleted). */
  readonly jobTtlMs: number;
  /** At most this many finished jobs are kept, the oldest deleted first (0: no limit). */
  readonly maxFinishedJobs: number;
  /** How often the head looks for jobs to delete. */
  readonly sweepMs: number;
}

export const DEFAULT_MAX_LOG_BYTES = 100 * 1024 * 1024;
export const DEFAULT_LOG_OPTIONS: LogOptions = {
  keepaliveMs: 5000,
  maxJobBytes: DEFAULT_MAX_LOG_BYTES,
  droppedTailBytes: 64 * 1024,
  rayResponseMaxBytes: 64 * 1024 * 1024,
};
export const DEFAULT_JOB_TTL_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_MAX_FINISHED_JOBS = 1000;

export interface HeadOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  readonly maxPackageBytes: number;
  readonly heartbeatIntervalMs: number;
  readonly leaseMs: number;
  readonly pollWaitMs: number;
  /** How long a task may wait before it reserves a node against smaller ones behind it. */
  readonly starvationMs: number;
  readonly killGraceMs: number;
  readonly logs: LogOptions;
  readonly retention: RetentionOptions;
  readonly localAgent: Omit<AgentOptions, 'address' | 'token'> | null;
}

export interface StartFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  numCpus?: string;
  numGpus?: string;
  memory?: string;
  resources?: string;
  nodeName?: string;
  localAgent?: boolean;
  address?: string;
  token?: string;
  workDir?: string;
  killGrace?: string;
  sandbox?: string;
  logLevel?: string;
  maxPackageSize?: string;
  heartbeatMs?: string;
  leaseMs?: string;
  cacheLimit?: string;
  sandboxInterpreters?: string;
  sandboxBind?: string;
  taskPidsMax?: string;
  taskOpenFiles?: string;
  /** false with --no-sandbox-reuse. */
  sandboxReuse?: boolean;
  maxLogSize?: string;
  jobTtl?: string;
  maxFinishedJobs?: string;
  /** false with --no-sandbox-seccomp. */
  sandboxSeccomp?: boolean;
}

function parseNumberFlag(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new RaysubError('USAGE', `--${name} must be a number >= ${min}, got "${value}"`);
  return n;
}

/** Parse sizes such as "512M", "2GiB", "1000000". */
export function parseBytes(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(value.trim());
  if (!m) throw new RaysubError('USAGE', `--${name} must be a size such as 512M or 2G, got "${value}"`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** Parse durations such as "7d", "12h", "30m", "45s", "1.5h" or plain seconds. */
export function parseDuration(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(value.trim());
  if (!m) throw new RaysubError('USAGE', `--${name} must be a duration such as 7d, 12h, 30m or 45s, got "${value}"`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's').toLowerCase()] ?? 1000;
  return Math.round(Number(m[1]) * mult);
}

function parseResources(value: string | undefined): ResourceMap {
  if (!value) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new RaysubError('USAGE', `--resources must be JSON such as '{"tpu": 4}'`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RaysubError('USAGE', '--resources must be a JSON object of numbers');
  }
  const out: ResourceMap = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'number' || v < 0) throw new RaysubError('USAGE', `--resources: "${k}" must be a number >= 0`);
    if (k === 'CPU' || k === 'GPU' || k === 'memory') throw new RaysubError('USAGE', `--resources: use --num-cpus, --num-gpus or --memory for "${k}"`);
    out[k] = v;
  }
  return out;
}

/** "a,b:c" -> ["a", "b", "c"]: commas or colons, as in PATH. */
function parseList(value: string): string[] {
  return value.split(/[,:]/).map((s) => s.trim()).filter(Boolean);
}

function agentBase(flags: StartFlags, workDir: string, hiddenPaths: string[]): Omit<AgentOptions, 'address' | 'token'> {
  const sandbox = flags.sandbox ?? env('RAYSUB_SANDBOX') ?? 'auto';
  if (!['auto', 'bwrap', 'process', 'none'].includes(sandbox)) {
    throw new RaysubError('USAGE', `--sandbox must be auto, bwrap, process or none, got "${sandbox}"`);
  }
  const numGpus = parseNumberFlag('num-gpus', flags.numGpus);
  if (numGpus !== undefined && !Number.isInteger(numGpus)) throw new RaysubError('USAGE', '--num-gpus must be a whole number');
  return {
    workDir,
    nodeName: flags.nodeName ?? os.hostname(),
    numCpus: parseNumberFlag('num-cpus', flags.numCpus) ?? os.availableParallelism(),
    numGpus,
    memory: parseBytes('memory', flags.memory) ?? os.totalmem(),
    resources: parseResources(flags.resources),
    killGraceMs: (parseNumberFlag('kill-grace', flags.killGrace) ?? envNumber('RAYSUB_KILL_GRACE_S') ?? 3) * 1000,
    sandbox: sandbox as AgentOptions['sandbox'],
    logLevel: (flags.logLevel as LogLevel | undefined) ?? logLevelFromEnv(),
    maxBufferedLogBytes: 8 * 1024 * 1024,
    hiddenPaths,
    cacheLimitBytes: parseBytes('cache-limit', flags.cacheLimit) ?? envNumber('RAYSUB_CACHE_LIMIT') ?? 10 * 1024 ** 3,
    sandboxInterpreters: parseList(flags.sandboxInterpreters ?? env('RAYSUB_SANDBOX_INTERPRETERS') ?? 'python3,python,node'),
    sandboxBinds: parseList(flags.sandboxBind ?? env('RAYSUB_SANDBOX_BIND') ?? '').map((p) => path.resolve(p)),
    taskPidsMax: Math.floor(parseNumberFlag('task-pids-max', flags.taskPidsMax, 16) ?? envNumber('RAYSUB_TASK_PIDS_MAX') ?? 4096),
    taskOpenFiles: Math.floor(parseNumberFlag('task-open-files', flags.taskOpenFiles, 64) ?? envNumber('RAYSUB_TASK_OPEN_FILES') ?? 4096),
    sandboxReuse: flags.sandboxReuse !== false && env('RAYSUB_SANDBOX_REUSE') !== '0',
    sandboxSeccomp: flags.sandboxSeccomp !== false && env('RAYSUB_SANDBOX_SECCOMP') !== '0',
  };
}

export function headOptionsFrom(flags: StartFlags): HeadOptions {
  const dataDir = path.resolve(flags.dataDir ?? defaultDataDir());
  const heartbeatIntervalMs = parseNumberFlag('heartbeat-ms', flags.heartbeatMs, 10) ?? envNumber('RAYSUB_HEARTBEAT_MS') ?? 1000;
  const leaseMs = parseNumberFlag('lease-ms', flags.leaseMs, 100) ?? envNumber('RAYSUB_LEASE_MS') ?? 15_000;
  return {
    host: flags.host ?? '127.0.0.1',
    port: parseNumberFlag('port', flags.port) ?? 8265,
    dataDir,
    logLevel: (flags.logLevel as LogLevel | undefined) ?? logLevelFromEnv(),
    maxPackageBytes: parseBytes('max-package-size', flags.maxPackageSize) ?? envNumber('RAYSUB_MAX_PACKAGE_BYTES') ?? DEFAULT_MAX_PACKAGE_BYTES,
    heartbeatIntervalMs,
    leaseMs: Math.max(leaseMs, heartbeatIntervalMs * 3),
    pollWaitMs: 20_000,
    starvationMs: (envNumber('RAYSUB_STARVATION_S') ?? 60) * 1000,
    killGraceMs: (parseNumberFlag('kill-grace', flags.killGrace) ?? envNumber('RAYSUB_KILL_GRACE_S') ?? 3) * 1000,
    logs: logOptionsFrom(flags),
    retention: retentionOptionsFrom(flags),
    localAgent: flags.localAgent === false ? null : agentBase(flags, path.join(dataDir, 'agent'), [dataDir]),
  };
}

function logOptionsFrom(flags: StartFlags): LogOptions {
  return {
    keepaliveMs: Math.max(10, envNumber('RAYSUB_LOG_KEEPALIVE_MS') ?? DEFAULT_LOG_OPTIONS.keepaliveMs),
    maxJobBytes: parseBytes('max-log-size', flags.maxLogSize ?? env('RAYSUB_MAX_LOG_SIZE')) ?? DEFAULT_LOG_OPTIONS.maxJobBytes,
    droppedTailBytes: Math.max(1024, envNumber('RAYSUB_LOG_DROPPED_TAIL_BYTES') ?? DEFAULT_LOG_OPTIONS.droppedTailBytes),
    rayResponseMaxBytes: Math.max(1024, envNumber('RAYSUB_RAY_LOGS_MAX_BYTES') ?? DEFAULT_LOG_OPTIONS.rayResponseMaxBytes),
  };
}

function retentionOptionsFrom(flags: StartFlags): RetentionOptions {
  const jobTtlMs = parseDuration('job-ttl', flags.jobTtl ?? env('RAYSUB_JOB_TTL')) ?? DEFAULT_JOB_TTL_MS;
  const maxFinishedJobs = parseNumberFlag('max-finished-jobs', flags.maxFinishedJobs ?? env('RAYSUB_MAX_FINISHED_JOBS'));
  if (maxFinishedJobs !== undefined && !Number.isInteger(maxFinishedJobs)) throw new RaysubError('USAGE', '--max-finished-jobs must be a whole number');
  // Look often enough that a job outlives its TTL by at most a quarter of it (and at most a minute).
  const sweepMs = envNumber('RAYSUB_RETENTION_SWEEP_MS') ?? Math.min(60_000, Math.max(1000, jobTtlMs > 0 ? jobTtlMs / 4 : 60_000));
  return { jobTtlMs, maxFinishedJobs: maxFinishedJobs ?? DEFAULT_MAX_FINISHED_JOBS, sweepMs: Math.max(50, sweepMs) };
}

export function agentOptionsFrom(flags: StartFlags): AgentOptions {
  const address = flags.address ?? env('RAYSUB_ADDRESS');
  if (!address) throw new RaysubError('USAGE', 'an agent needs the head\'s address: --address URL');
  const token = flags.token ?? env('RAYSUB_TOKEN');
  if (!token) throw new RaysubError('USAGE', 'an agent needs the cluster token: --token T (or RAYSUB_TOKEN)');
  const dataDir = path.resolve(flags.dataDir ?? defaultDataDir());
  const workDir = path.resolve(flags.workDir ?? path.join(dataDir, 'agents', sanitize(flags.nodeName ?? os.hostname())));
  return { ...agentBase(flags, workDir, []), address: normaliseAddress(address), token };
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

export interface ClientEnv {
  address: string | undefined;
  token: string | undefined;
  dataDir: string;
  noColor: boolean;
  isTTY: boolean;
  rayJobHeaders: string | undefined;
  /** A followed log stream silent this long (no output, no keep-alive) is reconnected. */
  followIdleMs: number;
  /** Commands that follow a job give up once the head has been unreachable this long. */
  unreachableTimeoutMs: number;
}

/** What the CLI takes from its environment. */
export function clientEnv(): ClientEnv {
  return {
    address: env('RAYSUB_ADDRESS') ?? env('RAY_ADDRESS'),
    token: env('RAYSUB_TOKEN'),
    dataDir: defaultDataDir(),
    noColor: env('NO_COLOR') !== undefined || env('TERM') === 'dumb',
    isTTY: Boolean(process.stdout.isTTY),
    rayJobHeaders: env('RAY_JOB_HEADERS'),
    followIdleMs: Math.max(100, envNumber('RAYSUB_FOLLOW_IDLE_MS') ?? 30_000),
    unreachableTimeoutMs: Math.max(0, envNumber('RAYSUB_UNREACHABLE_TIMEOUT_S') ?? 300) * 1000,
  };
}

/** The agent's own environment, for `${VAR}` expansion in env_vars and for passing PATH on. */
export function agentProcessEnv(): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  return out;
}
