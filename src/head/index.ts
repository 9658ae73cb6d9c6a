/**
 * The head: HTTP API, SQLite store, package and log stores, scheduler, and (by default) an
 * embedded agent so one process is a working one-machine cluster.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startAgent, type RunningAgent } from '../agent/index.js';
import type { HeadOptions } from '../shared/config.js';
import { RAYSUB_VERSION } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import { createHead, type Head } from './createHead.js';
import type { Engine } from './engine.js';
import type { JobService } from './jobService.js';

export { loadOrCreateToken } from './auth.js';
export { createHead, TOKEN_FILE, type CreateHeadOptions, type Head } from './createHead.js';

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
}

export const HEAD_INFO_FILE = 'head.json';

/** Build the head, serve it, write head.json, and start the embedded agent unless told not to. */
export async function startHead(opts: HeadOptions, logger?: Logger): Promise<RunningHead> {
  const head: Head = await createHead(opts, logger);
  const { log } = head;
  const cleanups: (() => void | Promise<void>)[] = [() => head.close()];
  try {
    const port = await head.serve(opts.host, opts.port);
    const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const infoFile = path.join(opts.dataDir, HEAD_INFO_FILE);
    const info: HeadInfoFile = { url, pid: process.pid, data_dir: opts.dataDir, version: RAYSUB_VERSION, started_at: Date.now() };
    fs.writeFileSync(infoFile, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    cleanups.unshift(() => fs.rmSync(infoFile, { force: true }));
    log.info({ url, dataDir: opts.dataDir }, 'head listening');

    let agent: RunningAgent | null = null;
    if (opts.localAgent) {
      agent = await startAgent({ ...opts.localAgent, address: url, token: head.token }, log.child({ component: 'local-agent' }));
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
