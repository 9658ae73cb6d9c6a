/**
 * A job's whole log as a text file (the dashboard's Download): every task's output in order,
 * lines of an array job prefixed `[task i]` as `raysub job logs` prints them. Written piece by
 * piece as the reader takes it, so no log is ever held whole in memory.
 */
import type { ServerResponse } from 'node:http';
import { toRaysubError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { JobService } from '../jobService.js';
import { LinePrefixer, followLogs, type LogFollowers } from '../logFollower.js';
import { writeText } from '../logResponses.js';
import type { LogStore } from '../logStore.js';

export async function serveLogDownload(
  ctx: { jobs: JobService; logs: LogStore; followers: LogFollowers },
  id: string,
  res: ServerResponse,
  log: Pick<Logger, 'warn'>,
): Promise<void> {
  const row = ctx.jobs.row(id);
  const follower = ctx.followers.start();
  const onClose = (): void => {
    if (!res.writableFinished) follower.abort();
  };
  res.once('close', onClose);
  const { signal } = follower;
  const write = (text: string): Promise<void> => (text ? writeText(res, text, signal) : Promise.resolve());
  try {
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      // The id is a submission id (letters, digits, _ . -): safe in a header as it is.
      'content-disposition': `attachment; filename="${row.id}.log"`,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    const prefixer = row.parallel > 1 ? new LinePrefixer() : null;
    const items = followLogs(ctx.logs, id, {
      follow: false,
      signal,
      taskCount: row.parallel,
      keepaliveMs: 60_000,
      status: () => ctx.jobs.row(id).status,
      onJobChange: () => () => undefined,
    });
    for await (const item of items) if (item.kind === 'piece') await write(prefixer ? prefixer.push(item) : item.text);
    if (prefixer) await write(prefixer.flush());
    res.end();
  } catch (err) {
    log.warn({ err: toRaysubError(err).message, jobId: id }, 'log download ended early');
    res.destroy();
  } finally {
    res.off('close', onClose);
    follower.release();
  }
}
