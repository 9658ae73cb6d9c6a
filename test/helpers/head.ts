/**
 * Heads built in this process, on a temporary data dir and SQLite file: a whole head (createHead)
 * serving nothing, which tests drive through `app.inject` (HTTP) and its parts, or an engine alone
 * for the head's decisions. Closed when the test ends.
 */
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { createHead, type CreateHeadOptions, type Head } from '../../src/head/createHead.js';
import { openStore, type NewJob, type Store } from '../../src/head/db/index.js';
import { Engine, type EngineOptions } from '../../src/head/engine.js';
import { LogStore } from '../../src/head/logStore.js';
import type { RegisterRequest, RuntimeEnv } from '../../src/shared/protocol/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { tempDir } from './cluster.js';

export async function inProcessHead(opts: Partial<CreateHeadOptions> = {}): Promise<Head> {
  const head = await createHead(
    {
      dataDir: tempDir('raysub-inproc-'),
      logLevel: 'silent',
      maxPackageBytes: 1024 * 1024,
      packageCaps: { maxBytes: 64 * 1024 * 1024, maxEntries: 10_000 },
      unusedPackageTtlMs: 600_000,
      heartbeatIntervalMs: 1000,
      leaseMs: 15_000,
      pollWaitMs: 1000,
      starvationMs: 60_000,
      unschedulableGraceMs: 60_000,
      ...opts,
    },
    silentLogger(),
  );
  onTestFinished(() => head.close());
  return head;
}

export interface InjectResult {
  status: number;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One HTTP request through the server's inject, with the cluster token unless `token` says otherwise. */
export async function call(head: Head, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, token: string | null = head.token): Promise<InjectResult> {
  const res = await head.app.inject({
    method,
    url,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  let json: InjectResult['json'] = {};
  try {
    json = JSON.parse(res.body) as InjectResult['json'];
  } catch {
    // not JSON
  }
  return { status: res.statusCode, json };
}

/** A registration as an agent sends it. */
export function registration(name: string, totals: Partial<RegisterRequest['totals']> = {}, sandbox: RegisterRequest['sandbox']['mode'] = 'bwrap'): RegisterRequest {
  return {
    node_name: name,
    hostname: 'test-host',
    pid: 1,
    version: 'test',
    totals: { num_cpus: 2, num_gpus: 0, memory: 8 * 1024 ** 3, resources: {}, ...totals },
    sandbox: { mode: sandbox, detail: 'test', cgroups: false },
  };
}

export interface EngineRig {
  engine: Engine;
  store: Store;
  logs: LogStore;
}

/**
 * An engine alone on a temporary SQLite file: no server, no timers (passes run only when the
 * test calls schedule(), with the time it passes in).
 */
export function engineOnTempDb(opts: Partial<EngineOptions> = {}): EngineRig {
  const dir = tempDir('raysub-engine-');
  const store = openStore(path.join(dir, 'raysub.db'));
  onTestFinished(() => {
    store.close();
  });
  const logs = new LogStore(path.join(dir, 'logs'));
  const engine = new Engine(store, logs, { leaseMs: 15_000, starvationMs: 60_000, unschedulableGraceMs: 60_000, ...opts }, silentLogger());
  engine.load();
  return { engine, store, logs };
}

export interface NodeSpec {
  cpus?: number;
  gpus?: number;
  memory?: number;
  resources?: Record<string, number>;
  slots?: number;
  sandbox?: 'bwrap' | 'process' | 'none';
  /** The head's own (embedded) agent. */
  head?: boolean;
}

/** Register a node the way an agent does; returns its id. */
export function addNode(rig: EngineRig, name: string, spec: NodeSpec = {}, now = Date.now()): string {
  return rig.engine.registerNode(
    {
      name,
      credential: spec.head ? 'local' : 'admin',
      hostname: 'test-host',
      totals: { num_cpus: spec.cpus ?? 2, num_gpus: spec.gpus ?? 0, memory: spec.memory ?? 8 * 1024 ** 3, resources: spec.resources ?? {}, ...(spec.slots !== undefined ? { task_slots: spec.slots } : {}) },
      sandbox: { mode: spec.sandbox ?? 'bwrap', detail: 'test', cgroups: false },
    },
    [],
    now,
  );
}

export interface JobSpec {
  cpus?: number;
  gpus?: number;
  memory?: number;
  custom?: Record<string, number>;
  parallel?: number;
  priority?: number;
  maxRetries?: number;
  retryBackoffS?: number;
  waitForCapacity?: boolean;
  /** Held to the head's own node (a Ray job that asks for no resources). */
  driverOnHead?: boolean;
  runtimeEnv?: RuntimeEnv;
  held?: boolean;
  /** Jobs it runs after once they succeeded, and once they ended. */
  after?: string[];
  afterAny?: string[];
  maxConcurrent?: number;
}

/** Record a job the way the job service does (validation aside); returns whether it was created. */
export function addJob(rig: EngineRig, id: string, spec: JobSpec = {}, now = Date.now()): boolean {
  const row: NewJob = {
    id,
    spec_hash: JSON.stringify(spec),
    entrypoint: 'true',
    runtime_env: JSON.stringify(spec.runtimeEnv ?? {}),
    metadata: '{}',
    request: JSON.stringify({ cpus: spec.cpus ?? 1, gpus: spec.gpus ?? 0, memory: spec.memory ?? 0, custom: spec.custom ?? {} }),
    parallel: spec.parallel ?? 1,
    max_retries: spec.maxRetries ?? 0,
    retry_backoff_s: spec.retryBackoffS ?? 1,
    timeout_s: null,
    priority: spec.priority ?? 0,
    wait_for_capacity: spec.waitForCapacity ? 1 : 0,
    memory_limit: 1,
    driver_on_head: spec.driverOnHead ? 1 : 0,
    schedule: null,
    status: 'PENDING',
    created_at: now,
    held: spec.held ? 1 : 0,
    max_concurrent: spec.maxConcurrent ?? null,
    after_jobs: spec.after || spec.afterAny ? JSON.stringify([...(spec.after ?? []).map((id) => ({ id, any: false })), ...(spec.afterAny ?? []).map((id) => ({ id, any: true }))]) : null,
  };
  return rig.engine.submitJob(row, { waitForCapacity: spec.waitForCapacity ?? false, packages: [] });
}

/** The head restarting on the same database: a new engine that loads what the old one left. */
export function restartEngine(rig: EngineRig, opts: Partial<EngineOptions> = {}): EngineRig {
  const engine = new Engine(rig.store, rig.logs, { leaseMs: 15_000, starvationMs: 60_000, unschedulableGraceMs: 60_000, ...opts }, silentLogger());
  engine.load();
  return { ...rig, engine };
}
