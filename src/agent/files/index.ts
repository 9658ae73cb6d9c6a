/**
 * File work off the event loop: a small pool of worker threads that run FileOps (unpacking,
 * copying into task dirs, ownership walks, removals) one at a time each, so that heartbeats,
 * polls and — for the embedded agent — the head's whole API keep answering while a package of
 * 50,000 files is unpacked. A worker that dies fails only the operation it was running; the next
 * operation gets a new worker.
 *
 * Run from TypeScript sources (tests that import the agent's modules directly) there is no
 * compiled worker script: operations then run in-process, with the same code.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { isErrorCode, RaysubError } from '../../shared/errors.js';
import { runFileOp, runSmallFileOp, type FileOp, type FileOpReply, type FileOpResult } from './ops.js';

export type { FileOp, FileOpResult } from './ops.js';

interface Job {
  id: number;
  op: FileOp;
  resolve: (r: FileOpResult) => void;
  reject: (err: Error) => void;
}

const POOL_SIZE = 2;
/** An idle worker is ended after this long: an agent with no package work holds no threads. */
const IDLE_MS = 30_000;
/** The worker's own heap; content passes through in chunks, so this is generous. */
const WORKER_HEAP_MB = 256;
const WORKER_URL = new URL('./worker.js', import.meta.url);
const FROM_SOURCES = import.meta.url.endsWith('.ts');

function errorFrom(e: { message: string; raysubCode: string | null; errno: string | null }): Error {
  if (e.raysubCode && isErrorCode(e.raysubCode)) return new RaysubError(e.raysubCode, e.message);
  const err = new Error(e.message) as NodeJS.ErrnoException;
  if (e.errno) err.code = e.errno;
  return err;
}

class Slot {
  job: Job | null = null;
  readonly worker: Worker;
  private idle: NodeJS.Timeout | null = null;

  constructor(private readonly pool: FileWorkers) {
    this.worker = new Worker(fileURLToPath(WORKER_URL), { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    this.worker.on('message', (reply: FileOpReply) => {
      const job = this.job;
      if (!job || reply.id !== job.id) return;
      this.job = null;
      if (reply.ok) job.resolve(reply.result);
      else job.reject(errorFrom(reply.error));
      this.pool.dispatch();
      if (this.job === null) {
        // An idle worker never keeps the process alive; a busy one does, until it answers.
        this.worker.unref();
        this.idle = setTimeout(() => {
          this.pool.forget(this);
          void this.worker.terminate();
        }, IDLE_MS);
        this.idle.unref();
      }
    });
    const died = (err: Error | number): void => {
      if (this.idle) clearTimeout(this.idle);
      const job = this.job;
      this.job = null;
      this.pool.forget(this);
      job?.reject(typeof err === 'number' ? new Error(`the file worker exited (${err}) during ${job.op.op}`) : err);
      this.pool.dispatch();
    };
    this.worker.on('error', died);
    this.worker.on('exit', died);
    // After the listeners (adding a 'message' listener refs the worker's port again).
    this.worker.unref();
  }

  run(job: Job): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.job = job;
    this.worker.ref();
    this.worker.postMessage({ id: job.id, op: job.op });
  }
}

export class FileWorkers {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;

  run(op: FileOp): Promise<FileOpResult> {
    if (FROM_SOURCES) return runFileOp(op);
    // Most task directories hold a few small files or none: no thread is started for those.
    const done = runSmallFileOp(op);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, resolve, reject });
      this.dispatch();
    });
  }

  /** Hand queued operations to idle workers, starting workers up to the pool's size. */
  dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot && this.slots.length < POOL_SIZE) {
        try {
          slot = new Slot(this);
        } catch (err) {
          for (const job of this.queue.splice(0)) job.reject(err as Error);
          return;
        }
        this.slots.push(slot);
      }
      if (!slot) return;
      slot.run(this.queue.shift() as Job);
    }
  }

  /** Worker threads alive now (each holds its own V8 heap). */
  get threads(): number {
    return this.slots.length;
  }

  forget(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }
}

const shared = new FileWorkers();

/** The shared pool's worker threads alive now. */
export function fileWorkerThreads(): number {
  return shared.threads;
}

/** Run a file operation off the event loop. */
export function fileOp(op: FileOp): Promise<FileOpResult> {
  return shared.run(op);
}
