/** `raysub job usage`: what jobs used over a period, one row per value of a label (Slurm's sacct). */
import { formatBytes } from '../../shared/resources.js';
import { renderTable } from '../../ui/table.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';
import { parseSince } from './job.js';

export async function usageCommand(ctx: CliContext, flags: { since?: string; until?: string; by?: string; json?: boolean }): Promise<number> {
  const summary = await ctx.client.usage({ since: parseSince(flags.since), until: parseSince(flags.until), by: flags.by });
  if (flags.json) {
    ctx.out.write(JSON.stringify(summary, null, 2) + '\n');
    return EXIT.OK;
  }
  const rows = summary.groups.map((g) => [
    g.group ?? (summary.by ? `(no ${summary.by})` : 'all'),
    String(g.jobs),
    String(g.attempts),
    g.cpu_s.toFixed(1) + (g.uncounted ? ` (+${g.uncounted} uncounted)` : ''),
    g.peak_memory === null ? 'n/a' : formatBytes(g.peak_memory),
    g.run_s.toFixed(1),
    g.gpu_s.toFixed(1),
  ]);
  const period = `${new Date(summary.from).toISOString()} to ${new Date(summary.to).toISOString()}`;
  if (rows.length === 0) ctx.out.write(`No jobs submitted from ${period}.\n`);
  else ctx.out.write(renderTable([summary.by ? summary.by.toUpperCase() : 'JOBS OF', 'JOBS', 'ATTEMPTS', 'CPU-S', 'PEAK-MEM', 'RUN-S', 'GPU-S'], rows));
  ctx.err.write(`Jobs submitted from ${period}; attempts that ran and ended.\n`);
  return EXIT.OK;
}
