/**
 * Disk pressure: a job must not fill its node's disk. Every second the guard asks the file system
 * of the agent's work dir how much space and how many inodes are left (one statfs); while both are
 * above the node's floor (`--min-free-disk`) that is all it does. Below it, it measures what each
 * running worker holds in its working directory and in its output waiting for the head (in the
 * file worker thread: a tree of a million files never stalls the agent) and kills the worker
 * holding the most, as the kubelet evicts the pod using the most ephemeral storage, logs included:
 * its task fails with `DISK_PRESSURE`, its directory is removed
 * as on any exit, and the guard waits for that directory to be gone before it judges again. A
 * worker holding almost nothing is never killed for a disk something else filled.
 */
import fs from 'node:fs';
import type { Logger } from '../shared/log.js';
import { formatBytes } from '../shared/resources.js';
import { fileOp } from './files/index.js';
import type { Launcher, LaunchSpec, WorkerExit, WorkerHandle } from './launcher.js';

/** The floor of free space and inodes on the work dir's file system. */
export interface DiskFloor {
  /** Bytes; null: only the fraction counts. */
  bytes: number | null;
  /** Of the file system's size; null: only the bytes count. With both, the smaller floor applies. */
  fraction: number | null;
}

/** Free inodes below which the guard acts: the smaller of this share of the file system's and the count. */
const INODE_FLOOR_FRACTION = 0.01;
const INODE_FLOOR_COUNT = 10_000;
/** A worker holding less than this in its working directory is not the one filling the disk. */
const MIN_EVICT_BYTES = 16 * 1024 * 1024;
const MIN_EVICT_INODES = 1_000;
const CHECK_MS = 1000;
/** Longest wait for an evicted worker's directory to be removed before judging again. */
const SETTLE_MAX_MS = 30_000;

interface Tracked {
  key: string;
  /** Its working directory, and files kept for it (its output waiting for the head). */
  paths: string[];
  handle: WorkerHandle;
  evicted: string | null;
}

export interface DiskReading {
  freeBytes: number;
  totalBytes: number;
  freeInodes: number;
  totalInodes: number;
}

/** Which floor a reading is below, or null when the disk is fine. */
export function pressureOf(r: DiskReading, floor: DiskFloor): { kind: 'bytes' | 'inodes'; floor: number } | null {
  const floors = [floor.bytes, floor.fraction === null ? null : Math.floor(r.totalBytes * floor.fraction)].filter((x): x is number => x !== null);
  const bytesFloor = floors.length > 0 ? Math.min(...floors) : 0;
  if (r.freeBytes < bytesFloor) return { kind: 'bytes', floor: bytesFloor };
  // File systems that report no inode count (0 total) have no inode limit to guard.
  const inodeFloor = r.totalInodes > 0 ? Math.min(Math.floor(r.totalInodes * INODE_FLOOR_FRACTION), INODE_FLOOR_COUNT) : 0;
  if (r.freeInodes < inodeFloor) return { kind: 'inodes', floor: inodeFloor };
  return null;
}

export class DiskGuard {
  private readonly live = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** The directory of the last worker evicted, until it is removed (or SETTLE_MAX_MS passed). */
  private settling: { dir: string; until: number } | null = null;
  private warnedIdle = false;

  constructor(
    private readonly root: string,
    private readonly floor: DiskFloor,
    private readonly log: Logger,
    private readonly checkMs = CHECK_MS,
  ) {}

  /** The launcher, with every worker it starts watched until it exits. */
  wrap(inner: Launcher): Launcher {
    const launch = async (spec: LaunchSpec): Promise<WorkerHandle> => this.track(spec, await inner.launch(spec));
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === 'launch') return launch;
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.checkMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private track(spec: LaunchSpec, handle: WorkerHandle): WorkerHandle {
    const t: Tracked = { key: spec.key, paths: [spec.cwd, ...(spec.alsoHolds ?? [])], handle, evicted: null };
    this.live.set(spec.key, t);
    const exited = handle.exited.then(
      (exit): WorkerExit => (t.evicted ? { ...exit, evicted: t.evicted } : exit),
    );
    void exited.finally(() => this.live.delete(spec.key)).catch(() => undefined);
    return { ...handle, exited };
  }

  /** One look at the disk; acts only below the floor. Never throws. */
  async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.settling) {
        if (fs.existsSync(this.settling.dir) && Date.now() < this.settling.until) return;
        this.settling = null;
      }
      const reading = await readDisk(this.root);
      const pressure = pressureOf(reading, this.floor);
      if (!pressure) {
        this.warnedIdle = false;
        return;
      }
      await this.evictLargest(reading, pressure);
    } catch (err) {
      this.log.warn({ err }, 'disk check failed');
    } finally {
      this.busy = false;
    }
  }

  private async evictLargest(reading: DiskReading, pressure: { kind: 'bytes' | 'inodes'; floor: number }): Promise<void> {
    let worst: { t: Tracked; bytes: number; entries: number } | null = null;
    for (const t of this.live.values()) {
      if (t.evicted) continue;
      const used = { bytes: 0, entries: 0 };
      for (const p of t.paths) {
        const u = await fileOp({ op: 'usage', path: p }).catch(() => null);
        used.bytes += u?.bytes ?? 0;
        used.entries += u?.entries ?? 0;
      }
      const size = pressure.kind === 'bytes' ? used.bytes : used.entries;
      if (!worst || size > (pressure.kind === 'bytes' ? worst.bytes : worst.entries)) worst = { t, bytes: used.bytes, entries: used.entries };
    }
    const enough = worst && (pressure.kind === 'bytes' ? worst.bytes >= MIN_EVICT_BYTES : worst.entries >= MIN_EVICT_INODES);
    const free = pressure.kind === 'bytes' ? `${formatBytes(reading.freeBytes)} free` : `${reading.freeInodes} free inodes`;
    const floorText = pressure.kind === 'bytes' ? formatBytes(pressure.floor) : `${pressure.floor} inodes`;
    if (!worst || !enough) {
      if (!this.warnedIdle) this.log.warn({ root: this.root, free, floor: floorText }, "the node's disk is below its floor and no running task holds much of it");
      this.warnedIdle = true;
      return;
    }
    const held = pressure.kind === 'bytes' ? formatBytes(worst.bytes) : `${worst.entries} files`;
    const message = `evicted: the node's disk had ${free} (its floor is ${floorText}, --min-free-disk) and this task's working directory and unsent output held ${held}, the most of any task on the node`;
    worst.t.evicted = message;
    this.settling = { dir: worst.t.paths[0] ?? '', until: Date.now() + SETTLE_MAX_MS };
    this.log.warn({ task: worst.t.key, free, floor: floorText, held }, 'disk pressure: killing the task holding the most of it');
    void worst.t.handle.terminate(0, 'SIGTERM').catch(() => undefined);
  }
}

export async function readDisk(root: string): Promise<DiskReading> {
  const s = await fs.promises.statfs(root);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize, freeInodes: s.ffree, totalInodes: s.files };
}
