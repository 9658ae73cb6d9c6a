/** The agent's records of in-job tasks, workers and actors. */
import type { ErrorInfo, Lang, SubmitSpec, Usage } from '../../shared/protocol/index.js';
import type { Capacity, TaskRequest } from '../../shared/resources.js';
import type { WorkerHandle } from '../launcher.js';
import type { Conn } from './conn.js';
import type { JobState } from './jobState.js';
import type { Holding } from './ledger.js';
import type { ObjValue } from './objects.js';

export interface Task {
  job: JobState;
  spec: SubmitSpec;
  args: Buffer;
  /** Large arguments that came by location: an object in its submitter's store (args is then empty). */
  argsFile?: { id: string; node: string; size: number };
  lang: Lang;
  attempt: number;
  /** 'local': submitted by a client on this node; 'head': placed here by the head for another node's client. */
  origin: 'local' | 'head';
  ownerNode: string;
  deps: Map<string, ObjValue>;
  holding: Holding | null;
  worker: WorkerProc | null;
  /** Counted as running (a plain task that was given resources here). */
  dispatched: boolean;
  /** Bytes of the agent's memory counted against the job for this task (0 once given back). */
  charged: number;
  /** For an actor's creation: tell the submitter's calls where the actor went. */
  decide?: (home: 'local' | 'remote') => void;
  /** It was cancelled (`force`: its worker is killed): it is never run again, nor retried. */
  cancelled?: { force: boolean };
  /** The placement group bundle it holds its resources in (its `holding` is then the bundle's). */
  bundle?: Bundle;
}

/** A placement group's bundle reserved on this node: its tasks and actors take from what it holds. */
export interface Bundle {
  job: JobState;
  group: string;
  index: number;
  /** What the bundle holds on the node's ledger. */
  holding: Holding;
  /** What its tasks and actors have not taken. */
  free: Capacity;
}

export type WorkerState = 'starting' | 'idle' | 'busy' | 'dead';

export interface WorkerProc {
  id: string;
  job: JobState;
  lang: Lang;
  /** Resource shape (and GPUs): a worker only runs tasks that asked for exactly what its limits are. */
  key: string;
  req: TaskRequest;
  gpuIds: number[];
  actorId: string | null;
  state: WorkerState;
  conn: Conn | null;
  handle: WorkerHandle | null;
  task: Task | null;
  /** Task waiting for this worker to come up. */
  first: Task | null;
  idleSince: number;
  /** It holds one of the node's worker slots (until its process is gone). */
  slot: boolean;
  /** Stopped while idle to make room for another worker. */
  evicted: boolean;
  /** Waiting in `get` for now. */
  blocked: boolean;
}

export interface Actor {
  id: string;
  job: JobState;
  worker: WorkerProc | null;
  holding: Holding | null;
  queue: Task[];
  /** Calls running now, by id (at most `concurrency`); its creation while the constructor runs. */
  running: Map<string, Task>;
  /** Its creation task, run again when it restarts. */
  creation: Task;
  concurrency: number;
  /** Restarts left when its process dies (-1: always). */
  restartsLeft: number;
  ready: boolean;
  dead: ErrorInfo | null;
  name: string;
  /** Its last handle went: it ends once the calls sent before have run. */
  released: boolean;
  /** Its process ends for good next (killed without restart, or it exited itself). */
  final: boolean;
  /** When its current process was started (restarts are spaced). */
  startedAt: number;
}

export function shapeKey(lang: Lang, req: TaskRequest, gpuIds: readonly number[]): string {
  const custom = Object.entries(req.custom)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${lang}|${req.cpus}|${req.gpus}|${req.memory}|${custom}|${gpuIds.join(',')}`;
}

/** A task whose argument is a failed object fails with that object's error, without running. */
export function depError(task: Task): ObjValue | null {
  for (const v of task.deps.values()) if (v.kind === 'error') return v;
  return null;
}

/** What the executor tells the rest of the agent. */
export interface ExecutorHooks {
  finished(task: Task, value: ObjValue): void;
  /** One of a task's values before it finished (a generator's yield). */
  item(task: Task, id: string, value: ObjValue): void;
  spill(task: Task): void;
  actorPlaced(job: JobState, actorId: string): void;
  /** An actor placed here is dead for good. */
  actorGone(job: JobState, actorId: string): void;
  output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void;
  /** Free resources on other nodes, as last heard from the head. */
  remoteFree(): Usage[];
  /** Tasks wait here that another node might take: hear from the head again soon. */
  waiting(): void;
  /** Every job's workers on this node. */
  allWorkers(): Iterable<WorkerProc>;
}
