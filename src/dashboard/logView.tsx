import { useEffect, useRef, useState } from 'preact/hooks';
import type { JobStatus, LogStreamLine } from '../shared/protocol/index.js';
import { enc, request } from './api.js';

interface Line {
  task: number;
  stream: 'stdout' | 'stderr' | 'system';
  text: string;
  /** The line has its newline (later output starts a new line). */
  done: boolean;
}

/** Lines kept on the page; the whole log is one click away (Download). */
const MAX_LINES = 5000;

/**
 * The job's log as it is written: raysub's NDJSON stream (the same ordered stream as
 * `raysub job logs -f`), resumed from the last offsets after a dropped connection.
 */
export function LogView({ id, parallel, onState }: { id: string; parallel: number; onState: (s: JobStatus) => void }) {
  const [lines, setLines] = useState<Line[]>([]);
  const [dropped, setDropped] = useState(0);
  const [state, setState] = useState<'following' | 'ended' | 'reconnecting'>('following');
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const onStateRef = useRef(onState);
  onStateRef.current = onState;

  useEffect(() => {
    const ac = new AbortController();
    const offsets: Record<string, number> = {};
    let buffer: Line[] = [];
    let droppedCount = 0;
    let flushTimer: ReturnType<typeof setTimeout> | null = null;
    const flush = (): void => {
      flushTimer = null;
      if (buffer.length > MAX_LINES) {
        droppedCount += buffer.length - MAX_LINES;
        buffer = buffer.slice(buffer.length - MAX_LINES);
      }
      setLines(buffer.slice());
      setDropped(droppedCount);
    };
    const add = (task: number, stream: Line['stream'], data: string): void => {
      const parts = data.split('\n');
      parts.forEach((part, i) => {
        const last = buffer[buffer.length - 1];
        const ends = i < parts.length - 1;
        if (i === 0 && last && !last.done && last.task === task && last.stream === stream) {
          buffer[buffer.length - 1] = { ...last, text: last.text + part, done: ends };
        } else if (part !== '' || ends) {
          buffer.push({ task, stream, text: part, done: ends });
        }
      });
      flushTimer ??= setTimeout(flush, 50);
    };
    const follow = async (): Promise<void> => {
      for (let attempt = 0; !ac.signal.aborted; attempt++) {
        try {
          const from = Object.entries(offsets)
            .map(([t, o]) => `${t}:${o}`)
            .join(',');
          const res = await request(`/api/jobs/${enc(id)}/logs/stream?follow=true${from ? `&from=${from}` : ''}`, { signal: ac.signal });
          setState('following');
          attempt = 0;
          const reader = res.body?.pipeThrough(new TextDecoderStream()).getReader();
          if (!reader) return;
          let rest = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            rest += value;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              const raw = rest.slice(0, nl);
              rest = rest.slice(nl + 1);
              if (!raw) continue;
              const line = JSON.parse(raw) as LogStreamLine;
              if ('data' in line) {
                add(line.task, line.stream, line.data);
                if (line.offset !== undefined) offsets[String(line.task)] = line.offset;
              } else if ('keepalive' in line) onStateRef.current(line.status);
              else if ('end' in line) {
                onStateRef.current(line.status);
                setState('ended');
                return;
              } else if ('error' in line) throw new Error(line.error.message);
            }
          }
        } catch (err) {
          if (ac.signal.aborted) return;
          // A job deleted meanwhile, a session gone: nothing to wait for.
          if (err instanceof Error && 'status' in err && (err as { status: number }).status >= 400 && (err as { status: number }).status < 500) {
            setState('ended');
            return;
          }
        }
        setState('reconnecting');
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
      }
    };
    void follow();
    return () => {
      ac.abort();
      if (flushTimer) clearTimeout(flushTimer);
    };
  }, [id]);

  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  const onScroll = (): void => {
    const el = box.current;
    if (el) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };

  return (
    <section aria-labelledby="log-title" class="log-section">
      <div class="section-head">
        <h2 id="log-title">Log</h2>
        <span class="muted" role="status">
          {state === 'following' ? 'following' : state === 'reconnecting' ? 'reconnecting…' : 'complete'}
        </span>
        <a class="button" href={`/api/jobs/${enc(id)}/logs/download`} download={`${id}.log`}>
          Download full log
        </a>
      </div>
      {dropped > 0 && <p class="hint">The first {dropped.toLocaleString('en')} lines are not shown here: download the full log.</p>}
      <div class="log" ref={box} onScroll={onScroll} tabIndex={0} role="log" aria-live="off" aria-label="Job output">
        {lines.length === 0 && <span class="muted">{state === 'ended' ? 'No output.' : 'No output yet.'}</span>}
        {lines.map((l, i) => (
          <div key={i} class={`line ${l.stream}`}>
            {parallel > 1 && <span class="task">[task {l.task}] </span>}
            {l.stream === 'stderr' && <span class="tag">stderr </span>}
            {l.text}
          </div>
        ))}
      </div>
    </section>
  );
}
