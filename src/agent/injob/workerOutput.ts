/**
 * Output of a job's workers: into the log of one of the job's own tasks running on this node, or,
 * where none runs here, through the head to a node that runs one (at most MAX_RELAYED_LOG_BYTES
 * waiting at once per job; past that it is dropped, saying so).
 */
import type { Outbox } from '../outbox.js';
import type { JobState } from './jobState.js';
import { MAX_RELAYED_LOG_BYTES } from './limits.js';
import type { Relay } from './relay.js';

export function workerOutput(job: JobState, stream: 'stdout' | 'stderr', data: Buffer, d: { outbox: Outbox; relay: Relay; wake: () => void }): void {
  if (data.length === 0) return;
  const driver = job.drivers[0];
  if (driver) return d.outbox.output(driver, stream, data);
  // Through the head, to a node running one of the job's tasks: at most MAX_RELAYED_LOG_BYTES waiting at once.
  if (job.relayedLogBytes + data.length > MAX_RELAYED_LOG_BYTES) {
    job.droppedLogBytes += data.length;
    return;
  }
  if (job.droppedLogBytes > 0) {
    const note = Buffer.from(`[raysub] ${job.droppedLogBytes} bytes of worker output were dropped: more than ${MAX_RELAYED_LOG_BYTES} bytes waited to go through the head\n`);
    job.droppedLogBytes = 0;
    data = Buffer.concat([note, data]);
  }
  for (let at = 0; at < data.length; at += 64 * 1024) {
    const piece = data.subarray(at, at + 64 * 1024);
    job.relayedLogBytes += piece.length;
    d.relay.push('logs', { job_id: job.jobId, data: piece.toString('base64') }, () => {
      job.relayedLogBytes -= piece.length;
    });
  }
  d.wake();
}
