import type { RaysubClient } from '../../client/index.js';
import { DEFAULTS } from '../../shared/config.js';
import { RaysubError, toRaysubError } from '../../shared/errors.js';
import { buildStatusView, type StatusView } from '../../ui/status/model.js';
import { renderStatusText } from '../../ui/status/sections.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';

export interface StatusFlags {
  watch?: boolean;
  interval?: string;
  json?: boolean;
}

/** One snapshot of the cluster: six reads, in parallel. */
export async function fetchStatus(client: RaysubClient, address: string): Promise<StatusView> {
  // Lists come newest submission first: the 50 newest ended ones are ordered by end time here.
  const [nodes, running, pending, failures, successes, schedules] = await Promise.all([
    client.nodes(),
    client.listJobs({ status: ['RUNNING'], limit: 50 }),
    client.listJobs({ status: ['PENDING'], limit: 50 }),
    client.listJobs({ status: ['FAILED'], limit: 50 }),
    client.listJobs({ status: ['SUCCEEDED'], limit: 50 }),
    client.listSchedules(),
  ]);
  return buildStatusView({
    address,
    fetchedAt: Date.now(),
    nodes,
    running: running.jobs,
    pending: pending.jobs,
    failures: failures.jobs,
    successes: successes.jobs,
    schedules,
  });
}

/** Sleep that ends early on SIGINT/SIGTERM; resolves false if the command should stop. */
function pause(ms: number, stop: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    stop.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export async function statusCommand(ctx: CliContext, flags: StatusFlags): Promise<number> {
  const interval = Number(flags.interval ?? DEFAULTS.statusIntervalS);
  if (!Number.isFinite(interval) || interval < 0.2) throw new RaysubError('USAGE', `--interval must be seconds >= 0.2, got "${flags.interval}"`);
  const intervalMs = interval * 1000;
  const first = await fetchStatus(ctx.client, ctx.address);

  if (ctx.isTTY && !flags.json) {
    // The live view owns the terminal: retries must not print over it, it shows errors itself.
    const quiet = ctx.client.derive({ retries: 0, onRetry: undefined });
    const { runLiveStatus } = await import('../../ui/status/live.js');
    await runLiveStatus({
      initial: first,
      load: () => fetchStatus(quiet, ctx.address),
      intervalMs,
      watch: Boolean(flags.watch),
      interactive: Boolean(process.stdin.isTTY),
      color: ctx.color.enabled,
    });
    return EXIT.OK;
  }

  // Plain text or JSON; with --watch, one snapshot per interval (JSON: one object per line).
  const print = (v: StatusView) => {
    if (flags.json) ctx.out.write(flags.watch ? JSON.stringify(v) + '\n' : JSON.stringify(v, null, 2) + '\n');
    else ctx.out.write(renderStatusText(v, ctx.color));
  };
  print(first);
  if (!flags.watch) return EXIT.OK;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (await pause(intervalMs, stop.signal)) {
      try {
        const v = await fetchStatus(ctx.client, ctx.address);
        if (!flags.json) ctx.out.write('\n');
        print(v);
      } catch (err) {
        ctx.err.write(`raysub: ${toRaysubError(err).message}\n`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return EXIT.OK;
}
