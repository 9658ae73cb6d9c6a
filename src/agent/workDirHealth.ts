/**
 * Whether this node's work dir takes writes. A work dir made read-only (or remounted read-only by
 * the kernel after an error), out of space or inodes, or failing with I/O errors fails every task
 * sent here at once; the node then reports itself unhealthy, so that the head places nothing new
 * on it (as the kubelet reports a node condition), until a probe — create, write, fsync and remove
 * a small file — succeeds again. The probe runs once at start-up, after a task's preparation
 * failed, and every few seconds while unhealthy; never while healthy and idle.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { guarded } from '../shared/boundary.js';
import type { Logger } from '../shared/log.js';
import type { NodeCondition } from '../shared/protocol/index.js';

/** How often an unhealthy node probes its work dir again. */
export const PROBE_INTERVAL_MS = 2000;
/** A probe that hangs this long (a dying disk) counts as failed. */
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_BYTES = Buffer.alloc(512, 0x2e);

/** Errors of the file system itself: whatever the path, the node is at fault. */
const FS_FAULTS = new Set(['EROFS', 'ENOSPC', 'EDQUOT', 'EIO']);
/** Errors that are the node's only when they name one of the agent's own directories. */
const OWN_DIR_FAULTS = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR']);

/** The errno and path a file-system error names (errors from the file worker carry the path only in their message). */
export function errnoOf(err: unknown): { code: string; path: string | null } | null {
  if (!(err instanceof Error)) return null;
  const e = err as NodeJS.ErrnoException;
  if (typeof e.code !== 'string' || !/^E[A-Z]+$/.test(e.code)) return null;
  return { code: e.code, path: typeof e.path === 'string' ? e.path : (/'([^']+)'/.exec(e.message)?.[1] ?? null) };
}

/**
 * Whether a failure to prepare a task's directory is the node's fault rather than the job's: the
 * file system refuses (read-only, full, over quota, I/O error), or one of the agent's own
 * directories (`ownDirs`) is missing or denied. The description names the errno and path, or null.
 */
export function nodeFaultOf(err: unknown, ownDirs: readonly string[]): string | null {
  const e = errnoOf(err);
  if (!e) return null;
  const own = e.path !== null && ownDirs.some((d) => path.resolve(d) === path.resolve(e.path as string));
  if (!FS_FAULTS.has(e.code) && !(OWN_DIR_FAULTS.has(e.code) && own)) return null;
  return (err as Error).message;
}

/** Create, write, fsync and remove a small file in `dir` (made again if it went missing). */
async function probe(dir: string, name: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o711 });
  const file = path.join(dir, name);
  const fh = await fs.open(file, 'wx', 0o600);
  try {
    await fh.writeFile(PROBE_BYTES);
    await fh.sync();
  } finally {
    await fh.close();
    await fs.unlink(file).catch(() => undefined);
  }
}

export class WorkDirHealth {
  private condition: NodeCondition | null = null;
  private running: Promise<boolean> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly name = `.probe-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  /** Called when the node turns unhealthy or healthy again (the agent reports it at once). */
  onChange: (() => void) | null = null;

  constructor(
    /** The directory probed: where tasks' directories are made. */
    readonly dir: string,
    private readonly log: Logger,
    private readonly intervalMs = PROBE_INTERVAL_MS,
  ) {}

  /** Why the node takes no new work, or undefined while its work dir is writable. */
  get unhealthy(): NodeCondition | undefined {
    return this.condition ?? undefined;
  }

  /** Probe now (one probe at a time: a caller during one shares it); true when the work dir takes writes. */
  check(): Promise<boolean> {
    this.running ??= this.probeOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async probeOnce(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`a probe of ${this.dir} did not finish in ${PROBE_TIMEOUT_MS / 1000}s`)), PROBE_TIMEOUT_MS);
    });
    try {
      await Promise.race([probe(this.dir, this.name), timeout]);
      if (this.condition) {
        this.log.info({ dir: this.dir, was: this.condition.reason }, 'work dir writable again: taking work');
        this.condition = null;
        this.onChange?.();
      }
      return true;
    } catch (err) {
      const reason = `work dir not writable: ${err instanceof Error ? err.message : String(err)}`.slice(0, 2000);
      if (this.condition?.reason !== reason) {
        this.log.error({ dir: this.dir, reason }, 'work dir not writable: this node takes no new work until it is');
        const first = this.condition === null;
        this.condition = { reason, since: this.condition?.since ?? Date.now() };
        if (first) this.onChange?.();
      }
      this.again();
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** While unhealthy, probe again after the interval. */
  private again(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(
      guarded(this.log, 'work dir probe', async () => {
        this.timer = null;
        if (!this.closed) await this.check();
      }),
      this.intervalMs,
    );
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
