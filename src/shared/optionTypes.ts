/** The shapes of compiled options (built by config.ts). */
import type { ArchiveCaps } from './archive/caps.js';
import type { HttpLimits } from './httpLimits.js';
import type { ResourceMap } from './resources.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type SandboxChoice = 'auto' | 'bwrap' | 'process' | 'none';

export interface AgentOptions {
  readonly address: string;
  readonly token: string;
  /** PEM of the CA(s) that sign the head's certificate (--ca), when not the system's. */
  readonly ca: string | undefined;
  /** The head's own certificate, for the embedded agent (accepted whatever names it carries). */
  readonly pin?: string;
  readonly workDir: string;
  readonly nodeName: string;
  /** false when the name is the default: the agent may pick another if the head refuses it. */
  readonly nodeNameGiven: boolean;
  readonly numCpus: number;
  readonly numGpus: number | undefined; // undefined: detect with nvidia-smi
  readonly memory: number;
  /** The tmpfs directory holding the shared-memory object store (null: objects only on disk). */
  readonly objectStoreDir: string | null;
  /** What objects in shared memory may fill on this node (past it they go to disk). */
  readonly objectStoreMemory: number;
  /** 'huge': the store is a huge-page tmpfs of the agent's own where it can (src/agent/injob/objectMount.ts); 'small': the directory's own 4 KiB pages. */
  readonly objectStorePages: 'huge' | 'small';
  readonly resources: ResourceMap;
  readonly killGraceMs: number;
  readonly sandbox: SandboxChoice;
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
  /** What one package may unpack to on this node. */
  readonly packageCaps: ArchiveCaps;
  /** The most a remote package (an http(s) archive in a runtime env) this node fetches may be. */
  readonly maxPackageBytes: number;
  /** Unpacked packages no task has used for this long are removed. */
  readonly unusedPackageTtlMs: number;
  /** Below this much free space on the work dir's file system the task holding the most of it is killed. */
  readonly minFreeDisk: { bytes: number | null; fraction: number | null };
  /** What the operator should hear about the options (a token on the command line...). */
  readonly warnings: readonly string[];
}

export type LocalAgentOptions = Omit<AgentOptions, 'address' | 'token' | 'ca' | 'pin' | 'warnings'>;

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
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

export interface HeadOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  readonly maxPackageBytes: number;
  /** What one package may unpack to, checked at upload. */
  readonly packageCaps: ArchiveCaps;
  /** Packages no job or schedule references are deleted this long after their last use. */
  readonly unusedPackageTtlMs: number;
  readonly heartbeatIntervalMs: number;
  readonly leaseMs: number;
  readonly pollWaitMs: number;
  /** How long a task may wait before it reserves a node against smaller ones behind it. */
  readonly starvationMs: number;
  /** How long a queued job that no alive node could ever run waits for one to join before it fails. */
  readonly unschedulableGraceMs: number;
  /** A job that does not say whether to wait fails at once when no node could ever run it (Ray: it waits). */
  readonly failUnschedulable: boolean;
  /** Ray's RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES: jobs that ask for no resources may run on any node, not only the head's. */
  readonly allowDriverOnWorkerNodes: boolean;
  readonly killGraceMs: number;
  readonly tls: TlsFiles | null;
  readonly http: HttpLimits;
  readonly logs: LogOptions;
  readonly retention: RetentionOptions;
  readonly localAgent: LocalAgentOptions | null;
}

/** The flags of `raysub start` (commander's camelCase keys; strings as typed). */
export interface StartFlags {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  numCpus?: string;
  numGpus?: string;
  memory?: string;
  resources?: string;
  nodeName?: string;
  localAgent?: boolean;
  failUnschedulable?: boolean;
  allowDriverOnWorkerNodes?: boolean;
  address?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  workDir?: string;
  killGrace?: string;
  sandbox?: string;
  logLevel?: string;
  maxPackageSize?: string;
  maxPackageUnpackedSize?: string;
  maxPackageEntries?: string;
  unusedPackageTtl?: string;
  heartbeatMs?: string;
  leaseMs?: string;
  cacheLimit?: string;
  minFreeDisk?: string;
  objectStorePages?: string;
  sandboxInterpreters?: string;
  sandboxBind?: string;
  taskPidsMax?: string;
  taskOpenFiles?: string;
  /** false with --no-sandbox-reuse. */
  sandboxReuse?: boolean;
  /** false with --no-sandbox-seccomp. */
  sandboxSeccomp?: boolean;
  maxLogSize?: string;
  jobTtl?: string;
  maxFinishedJobs?: string;
  tlsCert?: string;
  tlsKey?: string;
  httpHeadersTimeout?: string;
  httpRequestTimeout?: string;
  httpKeepAliveTimeout?: string;
  httpIdleTimeout?: string;
  maxConnections?: string;
  maxConnectionsPerAddress?: string;
}

/** The flags every client command shares. */
export interface ClientFlags {
  config?: string;
  address?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  dataDir?: string;
  headers?: string;
}

export interface ClientSettings {
  /** The address given by flag, environment or config file; undefined: find the local head. */
  address: string | undefined;
  token: string | undefined;
  ca: string | undefined;
  dataDir: string;
  headers: string | undefined;
  headersFrom: string;
  noColor: boolean;
  isTTY: boolean;
  /** A followed log stream silent this long (no output, no keep-alive) is reconnected. */
  followIdleMs: number;
  /** Commands that follow a job give up once the head has been unreachable this long. */
  unreachableTimeoutMs: number;
  /** How long a command retries a head that has not answered it yet (RAYSUB_CONNECT_RETRY_S). */
  connectRetryMs: number;
  warnings: readonly string[];
}
