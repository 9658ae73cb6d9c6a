import path from 'node:path';
import type { AgentEvent, LogChunk, LogStream, ReportRequest, ReportResponse, TaskRef } from '../shared/protocol/index.js';
import { LogBuffer, type LogCap } from './logBuffer.js';

type ExitInfo = Omit<Extract<AgentEvent, { type: 'exited' }>, 'seq' | 'type' | 'task_id' | 'attempt' | 'log_bytes'>;

export type Urgency = 'exit' | 'output' | 'start';

const key = (ref: TaskRef): string => `${ref.task_id}#${ref.attempt}`;

/** At most this much of an exit's message travels (the protocol takes 20,000 characters). */
const MAX_MESSAGE = 16_000;

function bounded(message: string | null): string | null {
  if (message === null || message.length <= MAX_MESSAGE) return message;
  // 12,000 of the beginning, 3,900 of the end, and a note of what went between them.
  return `${message.slice(0, 12_000)} [... ${message.length - 15_900} characters cut ...] ${message.slice(-3_900)}`;
}

/**
 * Everything the agent owes the head: events (numbered, resent until acknowledged) and output
 * (resent from the acknowledged offset). A task's exit event is numbered only once all of its
 * output travels in the same report, so the head never sees an exit before the last line.
 */
export class Outbox {
  private nextSeq = 1;
  private events: AgentEvent[] = [];
  private readonly buffers = new Map<string, { ref: TaskRef; buf: LogBuffer }>();
  private readonly exits = new Map<string, { ref: TaskRef; info: ExitInfo }>();
  /**
   * Called whenever there is something new to send: an exit is urgent (the head frees its
   * resources and answers with the next assignment); output can be batched; a start can wait
   * longer, so that a short task's start and exit travel in one report.
   */
  onChange: ((urgency: Urgency) => void) | null = null;
  /** The head's log cap, as it said when this agent registered (attempts started later keep no more). */
  logCap: LogCap | null = null;

  constructor(
    private readonly spoolDir: string,
    private readonly maxMemoryPerTask: number,
  ) {}

  /** Where an attempt's output waits on disk while the head has not taken it. */
  spoolPathOf(ref: TaskRef): string {
    return path.join(this.spoolDir, `${key(ref).replace(/[^A-Za-z0-9_.-]/g, '_')}.spool`);
  }

  private buffer(ref: TaskRef): LogBuffer {
    const k = key(ref);
    let entry = this.buffers.get(k);
    if (!entry) {
      entry = { ref, buf: new LogBuffer(this.spoolPathOf(ref), this.maxMemoryPerTask, this.logCap) };
      this.buffers.set(k, entry);
    }
    return entry.buf;
  }

  started(ref: TaskRef, at: number): void {
    this.events.push({ seq: this.nextSeq++, type: 'started', task_id: ref.task_id, attempt: ref.attempt, at });
    this.onChange?.('start');
  }

  output(ref: TaskRef, stream: LogStream, data: Buffer): void {
    this.buffer(ref).append(stream, data);
    this.onChange?.('output');
  }

  exited(ref: TaskRef, info: ExitInfo): void {
    this.buffer(ref);
    // A report the head refuses is resent until the node is declared lost: whatever a message
    // says, it must fit the protocol's bound.
    this.exits.set(key(ref), { ref, info: { ...info, message: bounded(info.message) } });
    this.onChange?.('exit');
  }

  hasWork(): boolean {
    if (this.events.length || this.exits.size) return true;
    for (const { buf } of this.buffers.values()) if (buf.unacked > 0) return true;
    return false;
  }

  /** Build the next report. Output of tasks whose exit is already numbered goes first, in full. */
  build(maxBytes: number, running: TaskRef[]): ReportRequest {
    const logs: LogChunk[] = [];
    let budget = maxBytes;
    const numbered = new Set(this.events.filter((e) => e.type === 'exited').map((e) => key(e)));
    const add = (ref: TaskRef, buf: LogBuffer, limit: number): void => {
      for (const p of buf.read(limit)) {
        logs.push({
          task_id: ref.task_id,
          attempt: ref.attempt,
          offset: p.offset,
          ...(p.skipped > 0 ? { skipped: p.skipped } : {}),
          stream: p.stream,
          data: p.data.toString('base64'),
          captured_at: p.time,
        });
        budget -= p.data.length;
      }
    };
    for (const k of numbered) {
      const e = this.buffers.get(k);
      if (e) add(e.ref, e.buf, Number.MAX_SAFE_INTEGER);
    }
    for (const [k, e] of this.buffers) {
      if (numbered.has(k) || e.buf.unacked === 0 || budget <= 0) continue;
      const whole = e.buf.unacked <= budget;
      add(e.ref, e.buf, budget);
      const exit = this.exits.get(k);
      if (exit && whole) this.numberExit(k, exit.ref, exit.info, e.buf.total);
    }
    for (const [k, exit] of this.exits) {
      const e = this.buffers.get(k);
      if (!e || e.buf.unacked === 0) this.numberExit(k, exit.ref, exit.info, e?.buf.total ?? 0);
    }
    return { events: [...this.events], logs, running };
  }

  private numberExit(k: string, ref: TaskRef, info: ExitInfo, logBytes: number): void {
    this.exits.delete(k);
    this.events.push({ seq: this.nextSeq++, type: 'exited', task_id: ref.task_id, attempt: ref.attempt, log_bytes: logBytes, ...info });
  }

  /** Apply the head's answer. Returns the refs whose exit the head has now recorded. */
  ack(res: ReportResponse): TaskRef[] {
    const done: TaskRef[] = [];
    this.events = this.events.filter((e) => {
      if (e.seq > res.acked_seq) return true;
      if (e.type === 'exited') done.push({ task_id: e.task_id, attempt: e.attempt });
      return false;
    });
    for (const a of res.logs) {
      const e = this.buffers.get(key(a));
      if (!e) continue;
      if (a.stale) e.buf.ack(e.buf.total);
      else e.buf.ack(a.offset);
    }
    for (const ref of done) {
      const e = this.buffers.get(key(ref));
      e?.buf.dispose();
      this.buffers.delete(key(ref));
    }
    return done;
  }

  /** Forget everything (the head declared this node lost: nothing it holds is current). */
  reset(): void {
    for (const e of this.buffers.values()) e.buf.dispose();
    this.buffers.clear();
    this.exits.clear();
    this.events = [];
    this.nextSeq = 1;
  }
}
