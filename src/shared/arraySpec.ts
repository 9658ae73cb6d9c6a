/**
 * Array index lists, as Slurm's `--array` writes them: `0-99`, `0-99:2` (every second), `1,5,9`,
 * mixed (`0-9,20-29:3`), with `%K` at the end for at most K tasks at once (`0-99%5`). Pure, so
 * the client and the head agree on what a spec means.
 */
import { RaysubError } from './errors.js';

/** The largest array index, and how many tasks an array may hold (as `--parallel`). */
export const MAX_ARRAY_INDEX = 1_000_000;
export const MAX_ARRAY_TASKS = 10_000;

export interface ArraySpec {
  /** The indices, ascending, each once. */
  indices: number[];
  /** `%K`: at most K tasks at once (null: not given). */
  maxConcurrent: number | null;
}

const PART = /^(\d{1,7})(?:-(\d{1,7})(?::(\d{1,7}))?)?$/;

export function parseArraySpec(spec: string): ArraySpec {
  const bad = (why: string): RaysubError => new RaysubError('INVALID_REQUEST', `array "${spec.slice(0, 100)}": ${why} (e.g. 0-99, 0-99:2, 1,5,9, 0-99%5)`);
  if (spec.length > 1000) throw bad('longer than 1000 characters');
  const [list = '', throttle, extra] = spec.trim().split('%');
  if (extra !== undefined) throw bad('one %K at most');
  let maxConcurrent: number | null = null;
  if (throttle !== undefined) {
    if (!/^\d{1,5}$/.test(throttle) || Number(throttle) < 1) throw bad('%K must be a whole number >= 1');
    maxConcurrent = Number(throttle);
  }
  const seen = new Set<number>();
  for (const part of list.split(',')) {
    const m = PART.exec(part.trim());
    if (!m) throw bad(`"${part.slice(0, 40)}" is not N, N-M or N-M:S`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (to < from) throw bad(`${from}-${to} runs backwards`);
    if (to > MAX_ARRAY_INDEX) throw bad(`indices go up to ${MAX_ARRAY_INDEX}`);
    if (step < 1) throw bad('a step must be >= 1');
    for (let i = from; i <= to; i += step) {
      seen.add(i);
      if (seen.size > MAX_ARRAY_TASKS) throw bad(`more than ${MAX_ARRAY_TASKS} tasks`);
    }
  }
  return { indices: [...seen].sort((a, b) => a - b), maxConcurrent };
}
