/**
 * A head built in this process with createHead, on a temporary data dir and SQLite file, serving
 * nothing: tests drive it through `app.inject` (HTTP) and its parts directly. Closed when the
 * test ends.
 */
import { onTestFinished } from 'vitest';
import { createHead, type CreateHeadOptions, type Head } from '../../src/head/createHead.js';
import type { RegisterRequest } from '../../src/shared/protocol/index.js';
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
