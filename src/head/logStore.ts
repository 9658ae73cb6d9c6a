import fs from 'node:fs';
import path from 'node:path';
import { RaysubError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { LogStream } from '../shared/protocol/index.js';
import { cutBack, mib, storageError, writeAll } from './logIo.js';
import { DroppedTail } from './logTail.js';
import { LogStreams } from './logStreams.js';
import { LogTimes, type TimeMark } from './logTimes.js';

export interface LogSegment {
  stream: LogStream;
  data: Buffer;
}


interface JobLogState {
  /** Bytes in all of the job's log files. */
  bytes: number;
  /** The job reached its cap: output is dropped (its last bytes kept per attempt). */
  capped: boolean;
}

export interface LogStoreOptions {
  /** Most bytes of output kept per job (0: no cap). */
  maxJobBytes: number;
  /** Bytes of dropped output kept per attempt and added to the log when the attempt ends. */
  tailBytes: number;
}

/** A task log changed (`idx`), or the whole job's logs were removed (`null`). */
export type LogWatcher = (idx: number | null) => void;

const CACHE_LIMIT = 512;
/** The submission id alphabet (protocol/common.ts): the only names log directories have. */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const CAPPED_FILE = 'capped';

/**
 * Per-task log files under `logs/<job-id>/<task-index>.log`: the only code that reads or writes
 * them. The file is the truth: appends are addressed by absolute position, so a resent chunk is
 * never written twice and a gap is never papered over. Output that is not stdout is recorded as
 * ranges in a `.streams` side file so readers can colour stderr and raysub's own lines.
 *
 * A job's logs hold at most `maxJobBytes`: the beginning is kept; past the cap a marker line says
 * so, later output is dropped (acknowledged, so agents move on), and the last `tailBytes` of each
 * attempt's dropped output are kept aside and added when the attempt ends.
 */
export class LogStore {
  private readonly sizes = new Map<string, number>();
  private readonly streams = new LogStreams();
  private readonly jobs = new Map<string, JobLogState>();
  private readonly watchers = new Map<string, Set<LogWatcher>>();
  private readonly tails: DroppedTail;
  private readonly times = new LogTimes();

  constructor(
    private readonly dir: string,
    private readonly opts: LogStoreOptions = { maxJobBytes: 0, tailBytes: 64 * 1024 },
    private readonly log?: Logger,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.tails = new DroppedTail(opts.tailBytes);
  }

  private key(jobId: string, idx: number): string {
    return `${jobId}/${idx}`;
  }

  /** The job's directory, checked: ids are validated at submission, and this holds whatever calls it. */
  private jobDir(jobId: string): string {
    const dir = path.resolve(this.dir, jobId);
    if (!JOB_ID.test(jobId) || path.dirname(dir) !== path.resolve(this.dir)) {
      throw new RaysubError('INTERNAL', `not a job id a log path can be built from: ${JSON.stringify(jobId.slice(0, 200))}`);
    }
    return dir;
  }

  logPath(jobId: string, idx: number): string {
    return path.join(this.jobDir(jobId), `${idx}.log`);
  }

  private streamsPath(jobId: string, idx: number): string {
    return path.join(this.jobDir(jobId), `${idx}.streams`);
  }

  private timesPath(jobId: string, idx: number): string {
    return path.join(this.jobDir(jobId), `${idx}.times`);
  }

  /** When each piece of a task's log was captured (logTimes.ts). */
  timeMarks(jobId: string, idx: number): readonly TimeMark[] {
    return this.times.marks(this.timesPath(jobId, idx));
  }

  private tailPath(jobId: string, idx: number): string {
    return path.join(this.jobDir(jobId), `${idx}.dropped`);
  }

  private remember<T>(map: Map<string, T>, key: string, value: T): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > CACHE_LIMIT) map.delete(map.keys().next().value as string);
  }

  /** Be told when a job's logs change; returns the function that stops it. */
  watch(jobId: string, fn: LogWatcher): () => void {
    let set = this.watchers.get(jobId);
    if (!set) this.watchers.set(jobId, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.watchers.get(jobId) === set) this.watchers.delete(jobId);
    };
  }

  private notify(jobId: string, idx: number | null): void {
    for (const fn of this.watchers.get(jobId) ?? []) {
      try {
        fn(idx);
      } catch (err) {
        this.log?.error({ err, jobId }, 'a log watcher failed');
      }
    }
  }

  size(jobId: string, idx: number): number {
    const key = this.key(jobId, idx);
    const cached = this.sizes.get(key);
    if (cached !== undefined) return cached;
    let size: number;
    try {
      size = fs.statSync(this.logPath(jobId, idx)).size;
    } catch {
      size = 0;
    }
    this.remember(this.sizes, key, size);
    return size;
  }

  private jobState(jobId: string): JobLogState {
    const cached = this.jobs.get(jobId);
    if (cached) return cached;
    const state: JobLogState = { bytes: 0, capped: false };
    let names: string[];
    try {
      names = fs.readdirSync(this.jobDir(jobId));
    } catch {
      names = [];
    }
    for (const name of names) {
      if (name === CAPPED_FILE) state.capped = true;
      else if (name.endsWith('.log')) state.bytes += fs.statSync(path.join(this.jobDir(jobId), name), { throwIfNoEntry: false })?.size ?? 0;
    }
    this.remember(this.jobs, jobId, state);
    return state;
  }

  /**
   * Store output of one attempt that starts at absolute position `at`. Bytes the file already
   * holds are skipped; a chunk starting past the end is refused. Returns the absolute position
   * up to which the head holds (or, past the cap, deliberately dropped) the attempt's output.
   */
  appendAt(jobId: string, idx: number, attempt: number, at: number, data: Buffer, stream: LogStream, capturedAt = Date.now()): number {
    const job = this.jobState(jobId);
    if (job.capped) return this.drop(jobId, idx, attempt, at, data);
    const size = this.size(jobId, idx);
    if (at > size || at + data.length <= size) return size;
    const fresh = data.subarray(size - at);
    const room = this.opts.maxJobBytes > 0 ? Math.max(0, this.opts.maxJobBytes - job.bytes) : Infinity;
    if (fresh.length <= room) return this.write(jobId, idx, size, fresh, stream, capturedAt);
    const kept = this.write(jobId, idx, size, fresh.subarray(0, room), stream, capturedAt);
    this.capJob(jobId);
    return this.drop(jobId, idx, attempt, kept, fresh.subarray(room));
  }

  /** The cap agents are told of, so that what they hold for an absent head is bounded too (null: no cap). */
  get cap(): LogStoreOptions | null {
    return this.opts.maxJobBytes > 0 ? this.opts : null;
  }

  /**
   * An agent dropped `n` bytes of an attempt's output from absolute position `at`, past the cap,
   * while this head was away. Recorded as dropped output (the job is capped if it was not:
   * the cap may have been raised since the agent heard it). Returns the position held, as appendAt.
   */
  skipAt(jobId: string, idx: number, attempt: number, at: number, n: number): number {
    if (!this.jobState(jobId).capped) {
      const size = this.size(jobId, idx);
      if (at > size) return size;
      if (at + n <= size) return at + n;
      this.capJob(jobId);
    }
    const file = this.tailPath(jobId, idx);
    this.marker(jobId, idx, file);
    try {
      return this.tails.skip(file, attempt, at, n);
    } catch (err) {
      throw storageError(err, `output of job ${jobId}`);
    }
  }

  private capJob(jobId: string): void {
    const job = this.jobState(jobId);
    if (job.capped) return;
    try {
      fs.writeFileSync(path.join(this.jobDir(jobId), CAPPED_FILE), '', { mode: 0o600 });
    } catch (err) {
      throw storageError(err, `the log cap of job ${jobId}`);
    }
    job.capped = true;
    this.log?.info({ jobId, maxBytes: this.opts.maxJobBytes }, 'a job reached its log cap; further output is dropped');
  }

  /** Past the cap: remember the bytes (for the attempt's tail), write nothing but a first marker. */
  private drop(jobId: string, idx: number, attempt: number, at: number, data: Buffer): number {
    const file = this.tailPath(jobId, idx);
    this.marker(jobId, idx, file);
    try {
      return this.tails.add(file, attempt, at, data);
    } catch (err) {
      throw storageError(err, `output of job ${jobId}`);
    }
  }

  /** The first time a task's output is dropped: end its last line and say so. */
  private marker(jobId: string, idx: number, tailFile: string): void {
    if (fs.existsSync(tailFile)) return;
    const size = this.size(jobId, idx);
    const nl = size > 0 && !this.endsWithNewline(jobId, idx, size) ? '\n' : '';
    this.write(jobId, idx, size, Buffer.from(nl), 'stdout');
    this.appendSystem(
      jobId,
      idx,
      `[raysub] log cap reached: a job keeps at most ${mib(this.opts.maxJobBytes)} of output (--max-log-size); ` +
        `further output is dropped, except the last ${mib(this.opts.tailBytes)} of each attempt, added when it ends`,
    );
  }

  private endsWithNewline(jobId: string, idx: number, size: number): boolean {
    const buf = Buffer.alloc(1);
    const fd = fs.openSync(this.logPath(jobId, idx), 'r');
    try {
      fs.readSync(fd, buf, 0, 1, size - 1);
    } finally {
      fs.closeSync(fd);
    }
    return buf[0] === 0x0a;
  }

  /**
   * An attempt ended (all of its output has arrived): if output was dropped, add what was kept
   * of its end after a marker. Never throws: the attempt's end must be recorded whatever the disk.
   */
  endAttempt(jobId: string, idx: number): void {
    const file = this.tailPath(jobId, idx);
    try {
      const tail = this.tails.take(file);
      if (!tail) return;
      const size = this.size(jobId, idx);
      this.appendSystem(jobId, idx, `[raysub] ${tail.dropped} bytes of output were dropped; the last ${tail.data.length} of them follow`);
      const text = tail.data.length && tail.data[tail.data.length - 1] !== 0x0a ? Buffer.concat([tail.data, Buffer.from('\n')]) : tail.data;
      this.write(jobId, idx, this.size(jobId, idx), text, 'stdout');
      this.log?.debug({ jobId, idx, size }, 'added the tail of dropped output');
    } catch (err) {
      this.log?.warn({ err, jobId, idx }, 'could not add the tail of dropped output to the log');
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Append one of raysub's own lines (between attempts, never inside one). Best effort: a full disk loses the line, not the state change. */
  appendSystem(jobId: string, idx: number, text: string): number {
    const line = text.endsWith('\n') ? text : text + '\n';
    try {
      return this.write(jobId, idx, this.size(jobId, idx), Buffer.from(line), 'system');
    } catch (err) {
      this.log?.warn({ err, jobId, idx }, 'could not write a line to the log');
      return this.size(jobId, idx);
    }
  }

  /** Write all of `data` at the end (`at`), or nothing: a failed write is cut back off. */
  private write(jobId: string, idx: number, at: number, data: Buffer, stream: LogStream, time = Date.now()): number {
    if (data.length === 0) return at;
    try {
      fs.mkdirSync(this.jobDir(jobId), { recursive: true, mode: 0o700 });
      const fd = fs.openSync(this.logPath(jobId, idx), 'a', 0o600);
      try {
        writeAll(fd, data);
        if (stream !== 'stdout') this.streams.add(this.streamsPath(jobId, idx), { offset: at, length: data.length, stream });
        this.times.mark(this.timesPath(jobId, idx), at, time);
      } catch (err) {
        cutBack(fd, at);
        throw err;
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      // If the cut failed, bytes of this chunk may remain: the size is read again from the file,
      // and the agent's resend (from what was acknowledged) skips them as already held.
      this.sizes.delete(this.key(jobId, idx));
      this.streams.forget(this.streamsPath(jobId, idx));
      this.times.forget(this.timesPath(jobId, idx));
      this.jobs.delete(jobId);
      throw storageError(err, `output of job ${jobId}`);
    }
    const size = at + data.length;
    this.remember(this.sizes, this.key(jobId, idx), size);
    this.jobState(jobId).bytes += data.length;
    this.notify(jobId, idx);
    return size;
  }

  /** Read bytes [from, from + max) of a task's log, split by stream. */
  read(jobId: string, idx: number, from: number, max = 1 << 20): LogSegment[] {
    const size = this.size(jobId, idx);
    const end = Math.min(size, from + max);
    if (end <= from) return [];
    const buf = Buffer.alloc(end - from);
    let got: number;
    try {
      const fd = fs.openSync(this.logPath(jobId, idx), 'r');
      try {
        got = fs.readSync(fd, buf, 0, buf.length, from);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      // Removed meanwhile (the job was deleted): nothing to read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const stop = from + got;
    const segments: LogSegment[] = [];
    let pos = from;
    for (const r of this.streams.ranges(this.streamsPath(jobId, idx))) {
      if (r.offset + r.length <= pos || r.offset >= stop) continue;
      if (r.offset > pos) segments.push({ stream: 'stdout', data: buf.subarray(pos - from, r.offset - from) });
      const rEnd = Math.min(stop, r.offset + r.length);
      const rStart = Math.max(pos, r.offset);
      segments.push({ stream: r.stream, data: buf.subarray(rStart - from, rEnd - from) });
      pos = rEnd;
    }
    if (pos < stop) segments.push({ stream: 'stdout', data: buf.subarray(pos - from, stop - from) });
    return segments;
  }

  /** Delete a job's logs; its followers are told. */
  removeJob(jobId: string): void {
    const dir = this.jobDir(jobId);
    for (const key of [...this.sizes.keys()]) if (key.startsWith(`${jobId}/`)) this.sizes.delete(key);
    this.jobs.delete(jobId);
    this.times.forget(dir + path.sep);
    this.streams.forget(dir + path.sep);
    fs.rmSync(dir, { recursive: true, force: true });
    this.notify(jobId, null);
  }

  /** Job ids that have a log directory (to find logs no job refers to any more). */
  jobDirs(): string[] {
    try {
      return fs.readdirSync(this.dir, { withFileTypes: true }).filter((d) => d.isDirectory() && JOB_ID.test(d.name)).map((d) => d.name);
    } catch {
      return [];
    }
  }
}
