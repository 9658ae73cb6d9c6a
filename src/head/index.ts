/**
 * The head: HTTP API, SQLite store, package and log stores, scheduler, and (by default) an
 * embedded agent so one process is a working one-machine cluster.
 */
import fs from 'node:fs';
import { startAgent, type RunningAgent } from '../agent/index.js';
import type { HeadOptions } from '../shared/config.js';
import { RAYSUB_VERSION } from '../shared/config.js';
import { containUnhandledRejections } from '../shared/boundary.js';
import { dataDirLayout, writePrivateFile } from '../shared/dataDir.js';
import type { Logger } from '../shared/log.js';
import { createHead, type Head } from './createHead.js';
import type { Engine } from './engine.js';
import type { JobService } from './jobService.js';

export { loadOrCreateToken } from './auth.js';
export { createHead, type CreateHeadOptions, type Head } from './createHead.js';

export interface RunningHead {
  url: string;
  port: number;
  token: string;
  dataDir: string;
  engine: Engine;
  jobs: JobService;
  agent: RunningAgent | null;
  /** Drain and stop: the embedded agent first (its workers are killed), then the server. */
  close(): Promise<void>;
}

export interface HeadInfoFile {
  url: string;
  pid: number;
  data_dir: string;
  version: string;
  started_at: number;
  /** The certificate an https head serves (PEM file), so clients on this machine can trust it. */
  tls_cert?: string;
}

/** Whether `host` is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Build the head, serve it, write head.json, and start the embedded agent unless told not to. */
export async function startHead(opts: HeadOptions, logger?: Logger): Promise<RunningHead> {
  const head: Head = await createHead(opts, logger);
  const { log } = head;
  containUnhandledRejections(log);
  const cleanups: (() => void | Promise<void>)[] = [() => head.close()];
  try {
    const port = await head.serve(opts.host, opts.port);
    const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
    const url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const infoFile = dataDirLayout(opts.dataDir).headInfo;
    const info: HeadInfoFile = { url, pid: process.pid, data_dir: opts.dataDir, version: RAYSUB_VERSION, started_at: Date.now(), ...(opts.tls ? { tls_cert: opts.tls.certFile } : {}) };
    writePrivateFile(infoFile, JSON.stringify(info, null, 2) + '\n');
    cleanups.unshift(() => fs.rmSync(infoFile, { force: true }));
    log.info({ url, dataDir: opts.dataDir, tls: opts.tls !== null }, 'head listening');
    if (!opts.tls && !isLoopbackHost(opts.host)) {
      log.warn({ host: opts.host }, 'serving plain HTTP beyond this machine: tokens, jobs and logs travel unencrypted; use --tls-cert and --tls-key');
    }

    let agent: RunningAgent | null = null;
    if (opts.localAgent) {
      agent = await startAgent({ ...opts.localAgent, address: url, token: head.localAgentToken, ca: undefined, pin: opts.tls?.cert, warnings: [] }, log.child({ component: 'local-agent' }));
      const a = agent;
      cleanups.unshift(() => a.close());
    }

    let closing: Promise<void> | null = null;
    return {
      url,
      port,
      token: head.token,
      dataDir: opts.dataDir,
      engine: head.engine,
      jobs: head.jobs,
      agent,
      close() {
        closing ??= (async () => {
          for (const fn of cleanups) await fn();
          log.info('head stopped');
          log.flush?.();
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const fn of cleanups) await fn();
    throw err;
  }
}
