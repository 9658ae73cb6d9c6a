/** What the HTTP routes are given: the head's parts, built by createHead. */
import type { LogOptions } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import type { AgentHub } from './agentHub.js';
import type { Authenticator } from './auth.js';
import type { NodeIdentity } from './nodeIdentity.js';
import type { Engine } from './engine.js';
import type { JobService } from './jobService.js';
import type { LogFollowers } from './logFollower.js';
import type { LogStore } from './logStore.js';
import type { HeadMetrics } from './metrics.js';
import type { PackageStore } from './packageStore.js';
import type { ScheduleService } from './schedules/index.js';
import type { Store } from './db/index.js';
import type { DashboardAssets } from './dashboard/assets.js';
import type { JobChanges } from './dashboard/changes.js';
import type { ClusterHistory } from './dashboard/history.js';
import type { SessionManager } from './dashboard/sessions.js';

/** The dashboard's parts: its sessions, built files, live job changes and the last hour's samples. */
export interface DashboardContext {
  sessions: SessionManager;
  assets: DashboardAssets;
  changes: JobChanges;
  history: ClusterHistory;
  /** Read-only use: job counts and label counts. */
  store: Pick<Store, 'jobs'>;
}

export interface HeadContext {
  engine: Engine;
  jobs: JobService;
  hub: AgentHub;
  logs: LogStore;
  packages: PackageStore;
  schedules: ScheduleService;
  auth: Authenticator;
  identity: NodeIdentity;
  /** What agents authenticate each other with (objects between agents): derived from the admin token. */
  peerToken: string;
  metrics: HeadMetrics;
  /** Open log streams and tails, ended when the head closes. */
  followers: LogFollowers;
  logOptions: LogOptions;
  log: Logger;
  sessionName: string;
  dashboard: DashboardContext;
}
