/** How a task is stopped (src/agent/stopPolicy.ts): Ray's two variables, table-driven in process. */
import { describe, expect, it } from 'vitest';
import { stopPolicyOf } from '../src/agent/stopPolicy.js';

describe('the stop policy of a job', () => {
  it("reads Ray's RAY_JOB_STOP_SIGNAL and RAY_JOB_STOP_WAIT_TIME_S, and says why when it cannot", () => {
    const table: [Record<string, string>, string, number, number][] = [
      [{}, 'SIGTERM', 3000, 0],
      [{ RAY_JOB_STOP_SIGNAL: 'SIGINT' }, 'SIGINT', 3000, 0],
      [{ RAY_JOB_STOP_SIGNAL: 'SIGTERM', RAY_JOB_STOP_WAIT_TIME_S: '1' }, 'SIGTERM', 1000, 0],
      [{ RAY_JOB_STOP_WAIT_TIME_S: '0.5' }, 'SIGTERM', 500, 0],
      [{ RAY_JOB_STOP_WAIT_TIME_S: '0' }, 'SIGTERM', 0, 0],
      [{ RAY_JOB_STOP_WAIT_TIME_S: '86400' }, 'SIGTERM', 3_600_000, 0],
      [{ RAY_JOB_STOP_SIGNAL: 'SIGKILL' }, 'SIGTERM', 3000, 1],
      [{ RAY_JOB_STOP_WAIT_TIME_S: 'soon' }, 'SIGTERM', 3000, 1],
      [{ RAY_JOB_STOP_WAIT_TIME_S: '-1', RAY_JOB_STOP_SIGNAL: '' }, 'SIGTERM', 3000, 2],
    ];
    for (const [vars, signal, graceMs, notes] of table) {
      const p = stopPolicyOf(vars, 3000);
      expect({ vars, signal: p.signal, graceMs: p.graceMs, notes: p.notes.length }).toEqual({ vars, signal, graceMs, notes });
    }
  });
});
