/**
 * The `raysub schedule ...` commands as commander sees them. Only definitions live here; the
 * bodies load lazily from commands/schedule.ts, so `raysub --help` stays fast.
 */
import { Option, type Command } from 'commander';
import type { CliContext } from './context.js';

type Flags = Record<string, unknown>;

export interface CommandKit {
  withConnection: (cmd: Command) => Command;
  withJobSpec: (cmd: Command) => Command;
  action: (run: (...args: never[]) => Promise<number>) => (...args: unknown[]) => Promise<void>;
  context: (flags: Flags) => Promise<CliContext>;
}

const CREATE_HELP = `
The working dir is packed and uploaded once, when the schedule is created, and every run uses
that snapshot: the head fires runs on its own, without this machine. To ship new code, run the
same \`schedule create NAME --update ...\` again (it re-packs and replaces the definition).

Examples:
  raysub schedule create nightly --cron "0 2 * * *" --timezone Europe/Berlin --working-dir . -- python train.py
  raysub schedule create tick --cron "*/10 * * * * *" --concurrency forbid -- python poll.py
  raysub schedule create weekly --cron "@weekly" --starting-deadline 3600 -- node report.js`;

export function addScheduleCommands(program: Command, kit: CommandKit): void {
  const { withConnection, withJobSpec, action, context } = kit;
  const schedule = program.command('schedule').description('cron schedules held and fired by the head');
  const load = () => import('./commands/schedule.js');

  withConnection(
    withJobSpec(
      schedule
        .command('create')
        .description('create a schedule that submits a job on a cron expression (working dir packed now; see --help)')
        .argument('<name>', 'schedule name (letters, digits, "_", ".", "-"); its jobs are named NAME-<epoch-seconds>')
        .argument('[entrypoint...]', 'the command to run, after --')
        .requiredOption('--cron <expr>', 'cron expression: 5 fields, or 6 with a leading seconds field; MON, JAN and @daily-style aliases work')
        .option('--timezone <tz>', 'IANA time zone the expression is read in (DST handled)', 'UTC')
        .addOption(
          new Option('--concurrency <policy>', 'allow overlapping runs, forbid (skip a run while one is active), or replace (stop it, start the new one)')
            .choices(['allow', 'forbid', 'replace'])
            .default('allow'),
        )
        .option('--starting-deadline <seconds>', 'never start a run more than this late, e.g. after the head was down (default: no limit)')
        .option('--successful-jobs-history-limit <n>', 'succeeded jobs of this schedule kept; older ones are deleted with their logs (default: 3)')
        .option('--failed-jobs-history-limit <n>', 'failed or stopped jobs of this schedule kept (default: 1)')
        .option('--suspend', 'create it paused')
        .option('--update', 'create, or replace the definition of an existing schedule (re-packs the working dir, keeps its history)'),
    )
      .option('--json', 'print the schedule as JSON')
      .option('-q, --quiet', 'print nothing but errors')
      .addHelpText('after', CREATE_HELP),
  ).action(
    action(async (name: string, args: string[], flags: Flags & { cron: string }) => (await load()).createCommand(await context(flags), name, args, flags)),
  );

  withConnection(schedule.command('list').description('list schedules: next run, last run and its status').option('--json', 'print JSON: {"schedules": [...]}')).action(
    action(async (flags: Flags) => (await load()).listCommand(await context(flags), flags)),
  );

  const byName = (name: string, description: string, configure: (c: Command) => Command, run: (ctx: CliContext, n: string, flags: Flags) => Promise<number>) =>
    withConnection(configure(schedule.command(name).description(description).argument('<name>', 'schedule name'))).action(
      action(async (n: string, flags: Flags) => run(await context(flags), n, flags)),
    );

  byName('get', 'show a schedule, its next due times, its job and recent runs', (c) => c.option('--json', 'print JSON'), async (ctx, n, f) =>
    (await load()).getCommand(ctx, n, f),
  );
  byName(
    'runs',
    'history of the runs a schedule fired, skipped or missed, newest first',
    (c) => c.option('--limit <n>', 'how many', '20').option('--json', 'print JSON: {"runs": [...]}'),
    async (ctx, n, f) => (await load()).runsCommand(ctx, n, f),
  );
  byName('pause', 'stop firing until resumed', (c) => c.option('--json', 'print JSON'), async (ctx, n, f) => (await load()).pauseCommand(ctx, n, true, f));
  byName('resume', 'fire again from the next due time (runs due while paused are not caught up)', (c) => c.option('--json', 'print JSON'), async (ctx, n, f) =>
    (await load()).pauseCommand(ctx, n, false, f),
  );
  byName(
    'trigger',
    'run the schedule\'s job now, under its concurrency policy (exit 65 if the policy skips it)',
    (c) => c.option('--submission-id <id>', 'id for the run\'s job (default: NAME-manual-<epoch-ms>)').option('--json', 'print the run as JSON'),
    async (ctx, n, f) => (await load()).triggerCommand(ctx, n, f),
  );
  byName('delete', 'delete a schedule and its run history (the jobs it fired stay)', (c) => c.option('--json', 'print JSON'), async (ctx, n, f) =>
    (await load()).deleteCommand(ctx, n, f),
  );
}
