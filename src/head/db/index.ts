import type BetterSqlite3 from 'better-sqlite3';
import { openDatabase, type Db } from './open.js';
import { jobsRepo } from './jobsRepo.js';
import { jobPageRepo } from './jobPage.js';
import { tasksRepo } from './tasksRepo.js';
import { nodesRepo } from './nodesRepo.js';
import { tokensRepo } from './tokensRepo.js';
import { sessionsRepo } from './sessionsRepo.js';
import { packageRefsRepo } from './packageRefsRepo.js';
import { usageRepo } from './usageRepo.js';

export type { Db } from './open.js';
export type { JobRow, NewJob, ListJobsQuery, LabelFilter, StatusCounts } from './jobsRepo.js';
export { LABEL_COUNT_LIMIT } from './jobsRepo.js';
export type { ListedJob } from './jobPage.js';
export type { SessionRow } from './sessionsRepo.js';
export type { TaskRow, AttemptRow, UsageTotals } from './tasksRepo.js';
export { usageTotalsOf } from './tasksRepo.js';
export type { NodeRow } from './nodesRepo.js';
export type { UsageGroup } from './usageRepo.js';
export type { TokenRow, TokenKind } from './tokensRepo.js';

/** The head's store: one SQLite database and its statements grouped by concern. */
export function openStore(file: string) {
  const db: BetterSqlite3.Database = openDatabase(file);
  return {
    db,
    jobs: jobsRepo(db),
    jobPages: jobPageRepo(db),
    tasks: tasksRepo(db),
    nodes: nodesRepo(db),
    tokens: tokensRepo(db),
    sessions: sessionsRepo(db),
    packageRefs: packageRefsRepo(db),
    usage: usageRepo(db),
    /** Run `fn` as one transaction: every state change is all-or-nothing. */
    tx<T>(fn: () => T): T {
      return db.transaction(fn)();
    },
    close: () => db.close(),
  };
}

export type Store = ReturnType<typeof openStore>;
export { openDatabase };
export type { Db as Database };
