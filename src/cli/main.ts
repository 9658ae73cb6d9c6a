/**
 * The raysub CLI. Commands load their modules lazily so `raysub --help` stays fast; one error
 * boundary turns known errors into a one-line message and a documented exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { RAYSUB_VERSION } from '../shared/version.js';
import { DEFAULTS } from '../shared/config.js';
import { RaysubError, toRaysubError } from '../shared/errors.js';
import type { CliContext } from './context.js';
import { EXIT, exitCodeForError } from './exitCodes.js';
import { addScheduleCommands } from './scheduleProgram.js';

type Flags = Record<string, unknown>;

/** Commander's way to take a flag more than once. */
const repeatable = (value: string, previous: string[] = []): string[] => [...previous, value];

function withConnection(cmd: Command): Command {
  return cmd
    .option('--address <url>', `head address (default: $RAYSUB_ADDRESS, $RAY_ADDRESS, the config file, the local head, http://127.0.0.1:${DEFAULTS.port})`)
    .option('--token-file <file>', "file holding your token (default: $RAYSUB_TOKEN_FILE, the config file, or the local head's token)")
    .option('--token <token>', 'your token (visible in ps: prefer --token-file or $RAYSUB_TOKEN)')
    .option('--ca <file>', 'CA certificate(s) to trust for an https head (default: $RAYSUB_CA)')
    .option('--headers <json>', 'extra HTTP headers as JSON (Ray\'s --headers; default: $RAY_JOB_HEADERS)')
    .option('--config <file>', 'config file (default: $RAYSUB_CONFIG, ~/.config/raysub/config.yaml)')
    .option('--data-dir <dir>', 'data dir of the local head (default: $RAYSUB_DATA_DIR, ~/.raysub)')
    .option('--no-color', 'never colour output (also: NO_COLOR)');
}

/** The flags that describe a job, shared by `job submit` and `schedule create`. */
function withJobSpec(cmd: Command): Command {
  return cmd
    .option('--working-dir <dir>', 'directory (or .zip/.tar.gz) to ship as the job\'s working dir')
    .option('--runtime-env <file>', 'runtime env as a JSON or YAML file')
    .option('--runtime-env-json <json>', 'runtime env as JSON')
    .option('--metadata-json <json>', 'metadata (string to string) as JSON')
    .option('--label <key=value>', 'a label, kept in the metadata; repeatable: --label team=vision --label stage=train', repeatable)
    .option('--name <name>', "the job's name (metadata job_name), e.g. --name resnet-sweep; job list --name finds it")
    .option('--entrypoint-num-cpus <n>', `CPUs per task (default: ${DEFAULTS.entrypointNumCpus})`)
    .option('--entrypoint-num-gpus <n>', 'GPUs per task (default: 0)')
    .option('--entrypoint-memory <bytes>', 'memory per task, e.g. 2G (the task is killed above it, unless --no-memory-limit)')
    .option('--no-memory-limit', 'place by --entrypoint-memory only, as Ray does; do not kill the task above it')
    .option('--entrypoint-resources <json>', 'custom resources per task as JSON')
    .option('--parallel <n>', 'run N tasks (an array job); each sees RAYSUB_TASK_INDEX')
    .option('--array <spec>', 'an array job over these indices, as Slurm writes them: --array 0-99:2, --array 1,5,9, --array 0-99%5 (at most 5 at once); each task sees RAYSUB_ARRAY_INDEX')
    .option('--max-concurrent <k>', 'run at most K of its tasks at once, e.g. --parallel 100 --max-concurrent 10')
    .option('--max-retries <n>', 'retry a failed task up to N times')
    .option('--retry-backoff <seconds>', `first retry delay, doubled each retry (default: ${DEFAULTS.retryBackoffS})`)
    .option('--timeout <seconds>', 'kill a task after this long (the job fails as TIMEOUT)')
    .option('--priority <n>', 'higher runs first (default: 0)')
    .option('--wait-for-capacity', 'queue even if no node could ever fit the request')
    .option('--stop-signal <signal>', "signal a stop sends to every process of the job: SIGTERM or SIGINT (sets Ray's RAY_JOB_STOP_SIGNAL)")
    .option('--stop-grace <seconds>', "how long a stop waits for the job's processes before killing them (sets Ray's RAY_JOB_STOP_WAIT_TIME_S; default: the node's --kill-grace)")
    .option('--max-package-size <bytes>', 'largest working dir to upload (default: 512M)');
}

async function context(flags: Flags): Promise<CliContext> {
  const { createContext } = await import('./context.js');
  return createContext(flags);
}

/** Run a command body and remember its exit code. */
function action(run: (...args: never[]) => Promise<number>) {
  return async (...args: unknown[]) => {
    process.exitCode = await (run as (...a: unknown[]) => Promise<number>)(...args);
  };
}

export function buildProgram(): Command {
  const program = new Command('raysub')
    .description('Submit Python and Node.js jobs to a raysub cluster (speaks Ray\'s Job Submission API).')
    .version(RAYSUB_VERSION)
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('start')
    .description('start a head (--head) or an agent that joins one (--address URL --token-file FILE)')
    .option('--head', 'start a head server (with an embedded local agent unless --no-local-agent)')
    .option('--address <url>', 'head to join, for an agent (default: $RAYSUB_ADDRESS)')
    .option('--token-file <file>', "file holding the agent's token (default: $RAYSUB_TOKEN_FILE)")
    .option('--token <token>', "the agent's token (visible in ps: prefer --token-file or $RAYSUB_TOKEN)")
    .option('--ca <file>', "CA certificate(s) to trust for an https head, for an agent (default: $RAYSUB_CA)")
    .option('--config <file>', 'config file (default: $RAYSUB_CONFIG, ~/.config/raysub/config.yaml)')
    .option('--port <port>', `head port (default: ${DEFAULTS.port})`)
    .option('--host <host>', `head listen address (default: ${DEFAULTS.host})`)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', 'private key of --tls-cert (PEM)')
    .option('--data-dir <dir>', 'data dir (default: ~/.raysub)')
    .option('--num-cpus <n>', 'CPUs this node offers (default: all)')
    .option('--num-gpus <n>', 'GPUs this node offers (default: detected with nvidia-smi)')
    .option('--memory <bytes>', 'memory this node offers, e.g. 16G (default: all)')
    .option('--resources <json>', 'custom resources, e.g. \'{"tpu": 4}\'')
    .option('--node-name <name>', 'node name (default: hostname)')
    .option('--work-dir <dir>', 'agent work dir (default: <data-dir>/agents/<node-name>)')
    .option('--no-local-agent', 'run the head without its embedded agent')
    .option('--fail-unschedulable', 'fail at once a job that no node could ever run, unless it asks to wait (default: it waits, as on Ray)')
    .option('--allow-driver-on-worker-nodes', "let jobs that ask for no resources run on any node, not only the head's (Ray's RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES=1)")
    .option('--detach', 'run the head in the background (stop it with `raysub stop`)')
    .option('--kill-grace <seconds>', `time between SIGTERM and SIGKILL when stopping a task (default: ${DEFAULTS.killGraceS})`)
    .addOption(new Option('--sandbox <mode>', `worker isolation (default: ${DEFAULTS.sandbox})`).choices(['auto', 'bwrap', 'process', 'none']))
    .option('--sandbox-interpreters <list>', 'interpreters workers see, found on PATH (default: python3,python,node)')
    .option('--sandbox-bind <paths>', 'extra host paths workers may read, comma-separated')
    .option('--task-pids-max <n>', 'processes and threads per task (default: 4096)')
    .option('--task-open-files <n>', 'open files per task process (default: 4096)')
    .option('--no-sandbox-reuse', "start every task in a new sandbox (default: a job's consecutive tasks on a node reuse one, emptied between them)")
    .option('--no-sandbox-seccomp', "leave out the workers' seccomp deny list (keyrings, ptrace, bpf, io_uring...; new namespaces stay refused)")
    .option('--max-package-size <bytes>', 'largest package the head accepts, and an agent fetches from an http(s) URI in a runtime env (default: 512M)')
    .option('--max-log-size <bytes>', "output a job's logs keep; the beginning is kept, plus the end of each attempt (default: 100M; 0: no cap)")
    .option('--max-package-unpacked-size <bytes>', 'most a package may unpack to, checked at upload and when a node unpacks it (default: 1G)')
    .option('--max-package-entries <n>', 'most files, directories and links a package may hold (default: 100000)')
    .option('--unused-package-ttl <duration>', 'delete packages nothing has used for this long (e.g. 600, 10m): on the head, those no job or schedule names; on a node, unpacked ones no task uses (default: 10m)')
    .option('--job-ttl <duration>', 'delete finished jobs and their logs this long after they ended, e.g. 7d, 12h (default: 7d; 0: keep)')
    .option('--max-finished-jobs <n>', 'keep at most this many finished jobs, deleting the oldest (default: 1000; 0: no limit)')
    .option('--heartbeat-ms <ms>', 'agent heartbeat interval (head option)')
    .option('--lease-ms <ms>', 'how long a silent agent keeps its lease (head option)')
    .option('--min-free-disk <size>', "below this much free space on a node's work dir disk, the task holding the most of it is killed (DISK_PRESSURE): a size, a percentage or both, e.g. 2G, 10%, 1G,5% (the smaller; default: 1G,5%; 0: off)")
    .option('--cache-limit <bytes>', 'agent cache size limit (default: 10G)')
    .option('--object-store-memory <bytes>', "shared memory in-job objects may fill on this node; past it they go to the work dir's disk (default: 30% of --memory)")
    .option('--object-store-dir <dir>', 'tmpfs directory of the shared-memory object store ("none": objects on disk only; default: /dev/shm)')
    .addOption(new Option('--object-store-pages <pages>', "huge: the store is a tmpfs of the agent's own with 2 MiB pages, where it is root (default); small: the directory's 4 KiB pages").choices(['huge', 'small']))
    .option('--max-connections <n>', 'HTTP connections the head holds at once (default: 3/4 of its open-file limit)')
    .option('--max-connections-per-address <n>', `HTTP connections one remote address may hold (default: ${DEFAULTS.maxConnectionsPerAddress})`)
    .option('--http-request-timeout <seconds>', `a request, body included, must arrive within this (default: ${DEFAULTS.httpRequestTimeoutS})`)
    .option('--http-headers-timeout <seconds>', `request headers must arrive within this (default: ${DEFAULTS.httpHeadersTimeoutS})`)
    .option('--http-keep-alive-timeout <seconds>', `idle keep-alive connections close after this (default: ${DEFAULTS.httpKeepAliveTimeoutS})`)
    .option('--http-idle-timeout <seconds>', `connections where nothing moves close after this (default: ${DEFAULTS.httpIdleTimeoutS})`)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(
      action(async (flags: Flags) => {
        const { startCommand } = await import('./commands/start.js');
        return startCommand(flags, process.argv);
      }),
    );

  program
    .command('stop')
    .description('stop the head running on this machine\'s data dir')
    .option('--data-dir <dir>', 'data dir of the head (default: ~/.raysub)')
    .option('--timeout <seconds>', `how long to wait before killing it (default: ${DEFAULTS.stopTimeoutS})`)
    .action(
      action(async (flags: Flags) => {
        const { stopCommand } = await import('./commands/stop.js');
        return stopCommand(flags);
      }),
    );

  const job = program.command('job').description('submit and manage jobs');

  withConnection(
    withJobSpec(
      job
        .command('submit')
        .description('pack the working dir, submit a job, and follow its logs until it ends')
        .argument('[entrypoint...]', 'the command to run (after --); one argument is run as a shell command line')
        .passThroughOptions()
        .option('--submission-id <id>', 'job id (default: generated); resubmitting the same id and spec returns the same job')
        .addOption(new Option('--job-id <id>').hideHelp()),
    )
      .option('--hold', 'submit it held: it stays PENDING until `raysub job release ID`')
      .option('--after <ids>', 'start only after these jobs succeeded; if one fails or is stopped, fail as DEPENDENCY_FAILED (e.g. --after prep-1,prep-2)')
      .option('--after-any <ids>', 'start only after these jobs ended, however they ended (e.g. --after-any train-7)')
      .option('--no-wait', 'submit and return without following the logs')
      .option('--json', "print the final job as JSON on stdout, the job's output on stderr (with --no-wait: its id)")
      .option('-q, --quiet', 'print only the job\'s own output')
      .addHelpText(
        'after',
        "\nExamples:\n  raysub job submit --working-dir . --entrypoint-memory 4G -- python3 train.py\n  raysub job submit --json -- python3 eval.py > result.json   # the job's output on stderr\nCtrl-C stops following (exit 75), not the job.\n",
      ),
  ).action(
    action(async (args: string[], flags: Flags) => {
      const { submitCommand } = await import('./commands/submit.js');
      return submitCommand(await context(flags), args, flags);
    }),
  );

  const byId = (name: string, description: string, configure: (c: Command) => Command, run: (ctx: CliContext, id: string, flags: Flags) => Promise<number>) =>
    withConnection(configure(job.command(name).description(description).argument('<id>', 'submission id'))).action(
      action(async (id: string, flags: Flags) => run(await context(flags), id, flags)),
    );

  byId('status', 'show a job\'s status, tasks, attempts and queue position', (c) => c.option('--json', 'print JSON'), async (ctx, id, f) =>
    (await import('./commands/job.js')).statusCommand(ctx, id, f),
  );
  byId(
    'logs',
    'print a job\'s logs; with --follow, until it ends (then exit with its code)',
    (c) =>
      c
        .option('-f, --follow', 'follow until the job ends')
        .option('-q, --quiet', 'only the job\'s own output')
        .option('--tail <n>', 'start at the last N lines (of each task)')
        .option('--since <duration>', 'only lines captured in the last DURATION (10m, 2h) or since a time (2026-01-31T12:00:00Z)')
        .option('--timestamps', 'prefix each line with the time it was captured (UTC, RFC 3339)')
        .option('--task <i>', "only this task's log (an array job's task index)")
        .option('--json', 'print NDJSON: {"task", "stream", "data"} per chunk ("time" with --timestamps); with --follow, a last {"end": true, ...} line')
        .addHelpText(
          'after',
          '\nExamples:\n  raysub job logs train-7 --tail 50 --follow\n  raysub job logs train-7 --since 10m --timestamps\n  raysub job logs sweep --task 3 > task3.log\n',
        ),
    async (ctx, id, f) => (await import('./commands/job.js')).logsCommand(ctx, id, f),
  );
  byId(
    'stop',
    'stop a job (a pending one leaves the queue at once) and wait until it has stopped',
    (c) => c.option('--no-wait', 'return once the stop is requested').option('--json', 'print JSON'),
    async (ctx, id, f) => (await import('./commands/job.js')).stopCommand(ctx, id, f),
  );
  byId('hold', 'keep a pending job from starting; it keeps its place in the queue (e.g. raysub job hold train-7)', (c) => c.option('--json', 'print JSON'), async (ctx, id, f) =>
    (await import('./commands/job.js')).holdCommand(ctx, id, true, f),
  );
  byId('release', 'let a held job start (e.g. raysub job release train-7)', (c) => c.option('--json', 'print JSON'), async (ctx, id, f) =>
    (await import('./commands/job.js')).holdCommand(ctx, id, false, f),
  );
  byId('delete', 'delete a finished job and its logs', (c) => c.option('--json', 'print JSON'), async (ctx, id, f) =>
    (await import('./commands/job.js')).deleteCommand(ctx, id, f),
  );
  byId(
    'wait',
    'wait for a job to end and exit with its code (see the README\'s exit codes)',
    (c) => c.option('--timeout <seconds>', 'give up after this long (exit 124)').option('--json', 'print the final job as JSON'),
    async (ctx, id, f) => (await import('./commands/job.js')).waitCommand(ctx, id, f),
  );

  withConnection(
    job
      .command('list')
      .description('list jobs, newest first')
      .option('--limit <n>', `page size (default: ${DEFAULTS.listLimit})`)
      .option('--cursor <cursor>', 'continue after a previous page')
      .option('--status <list>', 'only these statuses, e.g. RUNNING,PENDING')
      .option('--schedule <name>', 'only jobs fired by this schedule')
      .option('--label <key[=value]>', 'only jobs with this label (metadata entry), e.g. --label team=vision; repeatable, all must match', repeatable)
      .option('--name <name>', 'only jobs submitted with --name NAME, e.g. --name resnet-sweep')
      .option('--since <when>', 'only jobs submitted in this last while (2h, 7d) or since this time (2025-06-01, an ISO date)')
      .option('--json', 'print JSON: {"jobs": [...], "next_cursor": ...}'),
  ).action(
    action(async (flags: Flags) => (await import('./commands/job.js')).listCommand(await context(flags), flags)),
  );

  withConnection(
    job
      .command('usage')
      .description('what jobs used (CPU-seconds, peak memory, run time, GPU-seconds) over a period, by label, e.g. raysub job usage --since 7d --by team')
      .option('--since <when>', 'jobs submitted in this last while (7d) or since this time (an ISO date; default: all)')
      .option('--until <when>', 'and before this time (default: now)')
      .option('--by <label>', 'one row per value of this label (metadata key), e.g. --by team')
      .option('--json', 'print JSON: {"from", "to", "by", "groups": [...]}'),
  ).action(action(async (flags: Flags) => (await import('./commands/usage.js')).usageCommand(await context(flags), flags)));

  withConnection(program.command('nodes').description('list the cluster\'s nodes and their resources').option('--json', 'print JSON')).action(
    action(async (flags: Flags) => (await import('./commands/nodes.js')).nodesCommand(await context(flags), flags)),
  );

  const node = program
    .command('node')
    .description("control a node (the admin token): cordon, drain, uncordon, forget")
    .addHelpText('after', '\nExamples:\n  raysub node drain gpu-01 --timeout 3600   # then stop its agent\n  raysub node uncordon gpu-01\n  raysub node forget old-vm\n');
  const nodeVerbs = [
    ['cordon', 'take no new work on NAME; what runs there finishes (kept across its agent\'s restarts)'],
    ['drain', 'cordon NAME, then wait until it runs nothing (its agent can then be stopped)'],
    ['uncordon', 'give NAME work again'],
    ['forget', 'forget NAME, a node whose agent is gone (refused while it is alive)'],
  ] as const;
  for (const [verb, description] of nodeVerbs) {
    const cmd = node.command(verb).description(description).argument('<name>', 'node name (raysub nodes lists them)').option('--json', 'print JSON: {"node_name", "cordoned", "running_tasks"}');
    if (verb === 'drain') cmd.option('--no-wait', 'return once cordoned').option('--timeout <seconds>', 'give up waiting after this long (exit 124; the node stays cordoned)');
    withConnection(cmd).action(
      action(async (name: string, flags: Flags) => (await import('./commands/nodes.js')).nodeControlCommand(await context(flags), verb, name, flags)),
    );
  }

  addScheduleCommands(program, { withConnection, withJobSpec, action, context });

  withConnection(
    program
      .command('status')
      .description('the cluster at a glance: nodes, running and pending jobs, recent failures, schedules due next')
      .option('-w, --watch', 'refresh until q, Esc or Ctrl-C (without a terminal: print a snapshot every interval)')
      .option('--interval <seconds>', `refresh interval for --watch (default: ${DEFAULTS.statusIntervalS})`)
      .option('--json', 'print JSON (with --watch: one object per line)')
      .addHelpText('after', '\nExamples:\n  raysub status --watch --interval 5\n  raysub status --json | jq .recent_failures\n'),
  ).action(action(async (flags: Flags) => (await import('./commands/status.js')).statusCommand(await context(flags), flags)));

  withConnection(
    program
      .command('dashboard')
      .description('print a one-time login link for the web dashboard (works once, for two minutes)')
      .option('--url', 'print only the link')
      .option('--json', 'print JSON: {"url", "expires_at"}'),
  ).action(action(async (flags: Flags) => (await import('./commands/dashboard.js')).dashboardCommand(await context(flags), flags)));

  const token = program.command('token').description('user and agent tokens (the admin token only: the head\'s <data-dir>/token)');
  withConnection(
    token
      .command('create')
      .description('create a user token (the user API) or an agent token (registers and serves its own nodes only)')
      .requiredOption('--kind <kind>', 'user or agent')
      .option('--name <name>', 'a name to list and revoke it by (default: generated)')
      .option('--output <file>', 'write the token to this new file (mode 0600) instead of stdout')
      .option('--json', 'print JSON'),
  ).action(action(async (flags: Flags) => (await import('./commands/token.js')).tokenCreateCommand(await context(flags), flags)));
  withConnection(token.command('list').description('list tokens (never the tokens themselves)').option('--json', 'print JSON')).action(
    action(async (flags: Flags) => (await import('./commands/token.js')).tokenListCommand(await context(flags), flags)),
  );
  withConnection(token.command('revoke').description('revoke a token: requests carrying it are refused from now on').argument('<id-or-name>', 'token id or name').option('--json', 'print JSON')).action(
    action(async (id: string, flags: Flags) => (await import('./commands/token.js')).tokenRevokeCommand(await context(flags), id, flags)),
  );

  program
    .command('cert')
    .description('certificates for a head that serves HTTPS')
    .command('create')
    .description("make a CA and a head certificate it signs (for --tls-cert/--tls-key, and --ca on agents and clients)")
    .option('--dir <dir>', 'where to write ca.pem, ca-key.pem, head.pem, head-key.pem (default: <data-dir>/tls)')
    .option('--host <names...>', "extra DNS names or IP addresses clients use to reach the head (this machine's name, localhost, 127.0.0.1 and ::1 are always in)")
    .option('--days <n>', `how long the certificates are valid (default: ${DEFAULTS.certDays})`)
    .option('--force', 'replace existing files')
    .option('--data-dir <dir>', 'data dir (default: $RAYSUB_DATA_DIR, ~/.raysub)')
    .action(action(async (flags: Flags) => (await import('./commands/cert.js')).certCreateCommand(flags)));

  program
    .command('completion')
    .description('print a shell completion script: source <(raysub completion bash)')
    .argument('<shell>', 'bash or zsh')
    .action(action(async (shell: string) => (await import('./commands/completion.js')).completionCommand(program, shell, process.stdout)));

  return program;
}

/** The error boundary: expected failures print one line; anything else prints its stack. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.USAGE;
      return;
    }
    const e = toRaysubError(err);
    if (err instanceof RaysubError) {
      process.stderr.write(`raysub: error: ${e.message}\n`);
    } else {
      process.stderr.write(`raysub: internal error: ${e.message}\n${err instanceof Error ? err.stack : ''}\n`);
    }
    process.exitCode = exitCodeForError(e.code);
  }
}
