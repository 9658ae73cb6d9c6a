/**
 * Ray's words for raysub's outcomes (src/head/rayVocabulary.ts), table-driven in process, and the
 * exit code of a driver killed by a signal.
 */
import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../src/head/settle.js';
import { lastLines, rayErrorType, rayFailureMessage, rayStatusMessage } from '../src/head/rayVocabulary.js';
import type { JobErrorType, RayErrorType } from '../src/shared/protocol/index.js';

const none = { cpus: 0, gpus: 0, memory: 0, custom: {} };

describe("Ray's vocabulary", () => {
  it("maps each of raysub's error types to Ray's", () => {
    const table: [JobErrorType | null, number | null, RayErrorType | null][] = [
      [null, 0, null],
      ['STOPPED_BY_USER', null, null],
      ['ENTRYPOINT_FAILED', 3, 'JOB_ENTRYPOINT_COMMAND_ERROR'],
      ['ENTRYPOINT_FAILED', -9, 'JOB_ENTRYPOINT_COMMAND_ERROR'],
      ['ENTRYPOINT_FAILED', null, 'JOB_ENTRYPOINT_COMMAND_START_ERROR'],
      ['OOM_KILLED', -9, 'JOB_ENTRYPOINT_COMMAND_ERROR'],
      ['RUNTIME_ENV_SETUP_FAILED', null, 'RUNTIME_ENV_SETUP_FAILURE'],
      ['UNSCHEDULABLE', null, 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE'],
      ['NODE_LOST', null, 'JOB_SUPERVISOR_ACTOR_DIED'],
      ['SANDBOX_UNAVAILABLE', null, 'JOB_SUPERVISOR_ACTOR_START_FAILURE'],
      ['NODE_UNHEALTHY', null, 'JOB_SUPERVISOR_ACTOR_START_FAILURE'],
      ['TIMEOUT', null, 'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE'],
      ['INTERNAL', null, 'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE'],
    ];
    for (const [type, code, ray] of table) expect({ type, code, ray: rayErrorType(type, code) }).toEqual({ type, code, ray });
  });

  it("words failures as Ray's job supervisor and manager do", () => {
    const base = { submissionId: 'j1', detail: 'why', logTail: '' };
    expect(rayFailureMessage({ ...base, errorType: 'ENTRYPOINT_FAILED', exitCode: 3, logTail: 'a\nb' })).toBe(
      'Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\na\nb',
    );
    expect(rayFailureMessage({ ...base, errorType: 'ENTRYPOINT_FAILED', exitCode: 3 })).toBe('Job entrypoint command failed with exit code 3. No logs available.');
    expect(rayFailureMessage({ ...base, errorType: 'RUNTIME_ENV_SETUP_FAILED', exitCode: null })).toBe('runtime_env setup failed: why');
    expect(rayFailureMessage({ ...base, errorType: 'UNSCHEDULABLE', exitCode: null })).toBe('Job supervisor actor could not be scheduled: why');
    expect(rayFailureMessage({ ...base, errorType: 'NODE_LOST', exitCode: null })).toBe('Job supervisor actor died: why');
    expect(rayFailureMessage({ ...base, errorType: 'SANDBOX_UNAVAILABLE', exitCode: null })).toBe("Failed to start supervisor actor j1: 'why'");
    expect(rayFailureMessage({ ...base, errorType: 'TIMEOUT', exitCode: null })).toBe('Unexpected error occurred: why');
  });

  it("says what Ray says of a job that has not failed, and keeps the last 10 lines of at most 20,000 characters", () => {
    expect(rayStatusMessage('PENDING', { request: none, hasRuntimeEnv: false })).toBe('Job has not started yet.');
    expect(rayStatusMessage('PENDING', { request: { ...none, memory: 1 }, hasRuntimeEnv: true, waiting: 'needs 1 B memory' })).toBe(
      'Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available. ' +
        'It may be waiting for the runtime environment to be set up. (needs 1 B memory)',
    );
    expect(rayStatusMessage('RUNNING', { request: none, hasRuntimeEnv: false })).toBe('Job is currently running.');
    expect(rayStatusMessage('STOPPED', { request: none, hasRuntimeEnv: false })).toBe('Job was intentionally stopped.');
    expect(rayStatusMessage('SUCCEEDED', { request: none, hasRuntimeEnv: false })).toBe('Job finished successfully.');
    const text = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n';
    expect(lastLines(text)).toBe(Array.from({ length: 10 }, (_, i) => `line ${i + 20}`).join('\n'));
    expect(lastLines('x'.repeat(30_000))).toHaveLength(20_000);
  });

  it('gives a driver killed by a signal minus its number as its exit code', () => {
    expect(exitCodeOf(3, null)).toBe(3);
    expect(exitCodeOf(null, 'SIGKILL')).toBe(-9);
    expect(exitCodeOf(null, 'SIGTERM')).toBe(-15);
    expect(exitCodeOf(null, null)).toBeNull();
    expect(exitCodeOf(null, 'SIGNOTREAL')).toBeNull();
  });
});
