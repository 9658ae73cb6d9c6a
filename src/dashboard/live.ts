/** Live data for the pages: the head's job-change events, and a clock for ages and durations. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { JobCountsResponse } from '../shared/protocol/index.js';

/**
 * Calls `onChange` with the job counts whenever any job changes (server-sent events from the
 * head); EventSource reconnects by itself after a dropped connection.
 */
export function useJobChanges(onChange: (c: JobCountsResponse) => void): void {
  const ref = useRef(onChange);
  ref.current = onChange;
  useEffect(() => {
    const source = new EventSource('/api/cluster/events');
    source.addEventListener('jobs', (e: MessageEvent<string>) => {
      try {
        ref.current(JSON.parse(e.data) as JobCountsResponse);
      } catch {
        // a malformed event is skipped: the next one says it all again
      }
    });
    return () => source.close();
  }, []);
}

/** The time now, updated every `ms` (so ages and durations move on their own). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Run `load` now and every `ms` while the page is shown; a failure is kept to be shown, not thrown. */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, ms: number, deps: unknown[] = []): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      try {
        const d = await load(ac.signal);
        if (ac.signal.aborted) return;
        setData(d);
        setError(null);
      } catch (err) {
        if (ac.signal.aborted) return;
        setError(err instanceof Error ? err.message : String(err));
      }
      if (!ac.signal.aborted) timer = setTimeout(() => void run(), ms);
    };
    void run();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick, ms]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}
