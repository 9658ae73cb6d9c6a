/**
 * The head: HTTP API, SQLite store, package and log stores, scheduler, and (by default) an
 * embedded agent so one process is a working one-machine cluster.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startAgent, type RunningAgent } from '../agent/index.js';
import type { HeadOptions } from '../shared/config.js';
import { RAYSUB_VERSION } from '../shared/config.js';
import { RaysubError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { AgentHub } from './agentHub.js';
import { InjobHub } from './injob.js';
import { Authenticator, loadOrCreateToken } from './auth.js';
import { openStore } from './db/index.js';
import { Engine } from './engine.js';
import { JobService } from './jobService.js';
import { LogStore } from './logStore.js';
import { HeadMetrics } from './metrics.js';
import { PackageStore } from './packageStore.js';
import { ScheduleService, ScheduleTicker } from './schedules/index.js';
import { buildServer } from './server.js';

export { loadOrCreateToken } from './auth.js';

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
export const TOKEN_FILE = 'token';

/** One head per data dir: a lock file holding the owner's pid, taken over only if that pid is gone. */
function takeLock(file: string): () => void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new RaysubError('USAGE', `another head (pid ${pid}) is already using this data dir (${path.dirname(file)})`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new RaysubError('INTERNAL', `could not take the lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function startHead(opts: HeadOptions, logger?: Logger): Promise<RunningHead> {
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const log = logger ?? createLogger('raysub-head', opts.logLevel);
  const releaseLock = takeLock(path.join(opts.dataDir, 'head.lock'));
  const cleanups: (() => void | Promise<void>)[] = [releaseLock];
  try {
    const token = loadOrCreateToken(path.join(opts.dataDir, TOKEN_FILE));
    const store = openStore(path.join(opts.dataDir, 'raysub.db'));
    cleanups.unshift(() => {
      store.close();
    });
    const logs = new LogStore(path.join(opts.dataDir, 'logs'));
    const packages = new PackageStore(path.join(opts.dataDir, 'packages'), opts.maxPackageBytes);
    const engine = new Engine(store, logs, { leaseMs: opts.leaseMs, starvationMs: opts.starvationMs }, log.child({ component: 'engine' }));
    engine.load();
    const hub = new AgentHub(engine, opts, log.child({ component: 'agents' }));
    const jobs = new JobService(engine, packages);
    hub.assignmentOf = (t) => jobs.assignmentOf(t);
    const injob = new InjobHub(engine, log.child({ component: 'injob' }));
    hub.injob = injob;
    jobs.injobCounts = (id) => injob.countsOf(id);
    engine.onStopping = (id) => injob.jobStopping(id);
    const metrics = new HeadMetrics(engine);
    const schedules = new ScheduleService(engine, jobs, packages, log.child({ component: 'schedules' }));
    const ticker = new ScheduleTicker(schedules, log.child({ component: 'cron' }));
    const app = await buildServer({
      engine,
      jobs,
      hub,
      packages,
      schedules,
      auth: new Authenticator(token),
      metrics,
      log,
      sessionName: `raysub_${crypto.randomBytes(4).toString('hex')}`,
    });
    cleanups.unshift(() => app.close());
    cleanups.unshift(() => hub.close());
    await app.listen({ host: opts.host, port: opts.port });
    hub.start();
    engine.requestSchedule();
    ticker.start();
    cleanups.unshift(() => ticker.shutdown());
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : opts.port;
    const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const infoFile = path.join(opts.dataDir, HEAD_INFO_FILE);
    const info: HeadInfoFile = { url, pid: process.pid, data_dir: opts.dataDir, version: RAYSUB_VERSION, started_at: Date.now() };
    fs.writeFileSync(infoFile, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    cleanups.unshift(() => fs.rmSync(infoFile, { force: true }));
    log.info({ url, dataDir: opts.dataDir }, 'head listening');

    let agent: RunningAgent | null = null;
    if (opts.localAgent) {
      agent = await startAgent({ ...opts.localAgent, address: url, token }, log.child({ component: 'local-agent' }));
      const a = agent;
      cleanups.unshift(() => a.close());
    }

    let closing: Promise<void> | null = null;
    return {
      url,
      port,
      token,
      dataDir: opts.dataDir,
      engine,
      jobs,
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
