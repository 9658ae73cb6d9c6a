/**
 * Building a head: every part in dependency order, each given what it needs in its constructor.
 * createHead builds and loads but serves nothing yet (tests drive it through `app.inject`);
 * `serve()` starts listening, the lease checks, the cron ticker and the first scheduling pass.
 */
import crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_LOG_OPTIONS, DEFAULT_RETENTION_OPTIONS, DEFAULTS, defaultHttpLimits, type HeadOptions } from '../shared/config.js';
import { dataDirLayout, preparePrivateDataDir } from '../shared/dataDir.js';
import { createLogger, type Logger } from '../shared/log.js';
import { AgentHub } from './agentHub.js';
import { Authenticator, loadOrCreateToken } from './auth.js';
import { openStore, type Store } from './db/index.js';
import { Engine } from './engine.js';
import { InjobHub } from './injob.js';
import { JobService } from './jobService.js';
import { takeLock } from './lock.js';
import { LogFollowers } from './logFollower.js';
import { NodeIdentity } from './nodeIdentity.js';
import { LogStore } from './logStore.js';
import { HeadMetrics } from './metrics.js';
import { PackageCollector } from './packageGc.js';
import { PackageStore } from './packageStore.js';
import { RetentionSweeper } from './retention.js';
import { ScheduleService, ScheduleTicker } from './schedules/index.js';
import { buildServer } from './server.js';
import { DashboardAssets, defaultAssetDir } from './dashboard/assets.js';
import { JobChanges } from './dashboard/changes.js';
import { ClusterHistory, DEFAULT_HISTORY, type HistoryOptions } from './dashboard/history.js';
import { SessionManager } from './dashboard/sessions.js';

export type CreateHeadOptions = Pick<
  HeadOptions,
  'dataDir' | 'logLevel' | 'maxPackageBytes' | 'packageCaps' | 'unusedPackageTtlMs' | 'heartbeatIntervalMs' | 'leaseMs' | 'pollWaitMs' | 'starvationMs' | 'unschedulableGraceMs'
> &
  Partial<Pick<HeadOptions, 'logs' | 'retention' | 'http' | 'tls' | 'failUnschedulable' | 'allowDriverOnWorkerNodes' | 'localAgent'>> & {
    /** The cluster history's sampling (tests sample faster). */
    history?: HistoryOptions;
    /** The dashboard's open event streams at most (default 256; tests use fewer). */
    maxEventStreams?: number;
  };

export interface Head {
  readonly dataDir: string;
  readonly token: string;
  /** The embedded agent's own credential (not the admin token). */
  readonly localAgentToken: string;
  readonly log: Logger;
  readonly store: Store;
  readonly logs: LogStore;
  readonly engine: Engine;
  readonly injob: InjobHub;
  readonly jobs: JobService;
  readonly hub: AgentHub;
  readonly schedules: ScheduleService;
  readonly retention: RetentionSweeper;
  readonly app: FastifyInstance;
  /** Listen on host:port and start the head's timers; resolves with the bound port. */
  serve(host: string, port: number): Promise<number>;
  /** Stop the timers and the server, close the store, release the data dir. Idempotent. */
  close(): Promise<void>;
}

export async function createHead(opts: CreateHeadOptions, logger?: Logger): Promise<Head> {
  const layout = dataDirLayout(opts.dataDir);
  preparePrivateDataDir(layout);
  const log = logger ?? createLogger('raysub-head', opts.logLevel);
  const releaseLock = takeLock(layout.headLock);
  const cleanups: (() => void | Promise<void>)[] = [releaseLock];
  const cleanUp = async (): Promise<void> => {
    for (const fn of cleanups.splice(0)) await fn();
  };
  try {
    const token = loadOrCreateToken(layout.token);
    const store = openStore(layout.db);
    cleanups.unshift(() => {
      store.close();
    });
    const logOptions = opts.logs ?? DEFAULT_LOG_OPTIONS;
    const logs = new LogStore(layout.logs, { maxJobBytes: logOptions.maxJobBytes, tailBytes: logOptions.droppedTailBytes }, log.child({ component: 'logs' }));
    const packages = new PackageStore(layout.packages, { maxBytes: opts.maxPackageBytes, caps: opts.packageCaps });
    const engine = new Engine(store, logs, { leaseMs: opts.leaseMs, starvationMs: opts.starvationMs, unschedulableGraceMs: opts.unschedulableGraceMs }, log.child({ component: 'engine' }));
    engine.load();
    const injob = new InjobHub(engine, store, log.child({ component: 'injob' }));
    const jobs = new JobService(engine, store, logs, packages, injob, {
      failUnschedulable: opts.failUnschedulable ?? false,
      // The embedded agent's node is the head node: jobs that ask for no resources run there (Ray's rule).
      driverOnHead: (opts.localAgent ?? null) !== null && !(opts.allowDriverOnWorkerNodes ?? false),
    });
    const hub = new AgentHub(engine, store, logs, injob, opts, log.child({ component: 'agents' }));
    const followers = new LogFollowers();
    const metrics = new HeadMetrics(engine, store, followers);
    const schedules = new ScheduleService(engine, store, jobs, packages, log.child({ component: 'schedules' }));
    const ticker = new ScheduleTicker(schedules, log.child({ component: 'cron' }));
    const retention = new RetentionSweeper(
      store,
      {
        deleteJob: (id) => jobs.delete(id),
        scheduleLimits: () => schedules.repo.historyLimits(),
        logDirs: () => logs.jobDirs(),
        jobExists: (id) => store.jobs.get(id) !== undefined,
        removeLogs: (id) => logs.removeJob(id),
      },
      opts.retention ?? DEFAULT_RETENTION_OPTIONS,
      log.child({ component: 'retention' }),
    );
    const auth = new Authenticator(token, store);
    const sessions = new SessionManager(store, auth, token, {
      ttlMs: DEFAULTS.dashboardSessionTtlS * 1000,
      idleMs: DEFAULTS.dashboardSessionIdleS * 1000,
      codeTtlMs: DEFAULTS.dashboardLoginCodeTtlS * 1000,
      secure: Boolean(opts.tls),
    });
    const history = new ClusterHistory(engine, store, log.child({ component: 'history' }), opts.history ?? DEFAULT_HISTORY);
    const changes = new JobChanges(engine, store, log.child({ component: 'dashboard' }), opts.maxEventStreams);
    const collector = new PackageCollector(packages, store.packageRefs, opts.unusedPackageTtlMs, log.child({ component: 'packages' }));
    const app = await buildServer({
      engine,
      jobs,
      hub,
      logs,
      packages,
      schedules,
      auth,
      identity: new NodeIdentity(store, auth),
      peerToken: crypto.createHmac('sha256', token).update('raysub agent peers').digest('hex'),
      metrics,
      followers,
      logOptions,
      log,
      sessionName: `raysub_${crypto.randomBytes(4).toString('hex')}`,
      dashboard: { sessions, assets: new DashboardAssets(defaultAssetDir()), changes, history, store },
    }, { http: opts.http ?? defaultHttpLimits(), tls: opts.tls ?? null });
    cleanups.unshift(() => app.close());
    // Followers end first, so closing the server does not wait on streams that would never finish.
    cleanups.unshift(() => followers.closeAll());
    cleanups.unshift(() => changes.closeAll());
    cleanups.unshift(() => history.shutdown());
    cleanups.unshift(() => hub.close());
    cleanups.unshift(() => ticker.shutdown());
    cleanups.unshift(() => collector.shutdown());
    cleanups.unshift(() => retention.shutdown());
    cleanups.unshift(() => engine.stop());
    let closing: Promise<void> | null = null;
    return {
      dataDir: opts.dataDir,
      token,
      localAgentToken: auth.localAgentToken,
      log,
      store,
      logs,
      engine,
      injob,
      jobs,
      hub,
      schedules,
      retention,
      app,
      async serve(host, port) {
        // Before any request: logs a crash left without their job are removed while nothing writes.
        retention.start();
        await app.listen({ host, port });
        hub.start();
        engine.start();
        ticker.start();
        history.start();
        collector.start();
        const address = app.server.address();
        return typeof address === 'object' && address ? address.port : port;
      },
      close() {
        closing ??= cleanUp();
        return closing;
      },
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}
