/**
 * One recipe for a worker's surroundings, used by a job's own tasks (taskRun.ts) and by its in-job
 * workers (injob/workerLaunch.ts) alike: the job's sandbox requirement checked against this node,
 * the job's package copied into a directory of its own, the task's variables, and its runtime env
 * prepared. What differs between the two is only what they then launch.
 */
import type { Assignment, ExitOutcome, JobContext } from '../shared/protocol/index.js';
import { toRaysubError } from '../shared/errors.js';
import { redactUrl } from '../shared/remotePackages.js';
import type { Launcher } from './launcher.js';
import { buildTaskEnv, prepareRuntimeEnv, type RuntimeEnvContext } from './runtimeEnv.js';
import { workingDirUri, type Workspace } from './workspace.js';

/** Why a worker could not be prepared or started (the attempt's outcome). */
export class SetupError extends Error {
  constructor(
    readonly outcome: Extract<ExitOutcome, 'setup_failed' | 'sandbox_unavailable' | 'spawn_failed'>,
    message: string,
    /** The node is at fault, not the job (its work dir could not be written): the task may run elsewhere. */
    readonly nodeFault = false,
  ) {
    super(message);
  }
}

const STRENGTH = { none: 0, process: 1, bwrap: 2 } as const;

export interface PrepareDeps {
  workspace: Workspace;
  launcher: Launcher;
  runtimeEnv: RuntimeEnvContext;
  headAddress: string;
  nodeId: () => string;
  nodeName: string;
}

export interface PreparedWorker {
  dir: string;
  env: Record<string, string>;
  /** The runtime env's own command line (a Node job's), or null: the caller's. */
  argv: string[] | null;
  readOnlyPaths: string[];
  /** Give back the runtime env's leases (the caller removes `dir` when the worker is gone). */
  release(): void;
}

/** The job's sandbox requirement against this node: a SetupError('sandbox_unavailable') when it is not met. */
export function checkSandbox(job: Pick<JobContext, 'sandbox'>, launcher: Pick<Launcher, 'mode' | 'detail'>, nodeName: string): void {
  const required = job.sandbox.require;
  if (required && STRENGTH[required] > STRENGTH[launcher.mode]) {
    throw new SetupError('sandbox_unavailable', `job requires a "${required}" sandbox; node ${nodeName} provides "${launcher.mode}" (${launcher.detail})`);
  }
}

/**
 * Prepare a worker for `a` in a directory named `key` (under `group`'s directory when given).
 * Errors are SetupErrors, except once `signal` is aborted: then the abort's error passes through.
 */
export async function prepareWorker(deps: PrepareDeps, a: Assignment, o: { key: string; group: string | null; signal: AbortSignal; output: (text: string) => void }): Promise<PreparedWorker> {
  checkSandbox(a.job, deps.launcher, deps.nodeName);
  const setup = (what: string) => (err: unknown): never => {
    if (o.signal.aborted) throw err;
    throw new SetupError('setup_failed', `${what}${toRaysubError(err).message}`);
  };
  // Fetching and copying happen in the node's work dir: a failure there may be the node's, not the job's.
  const inWorkDir = (what: string) => async (err: unknown): Promise<never> => {
    const fault = o.signal.aborted ? null : await deps.workspace.faultOf(err, o.key, o.group);
    // Bounded well under what an exit event may carry (paths and a probe's finding).
    if (fault !== null && !o.signal.aborted) throw new SetupError('setup_failed', `node ${deps.nodeName} could not prepare the task (${what}): ${fault}`.slice(0, 8000), true);
    return setup(`${what}: `)(err);
  };
  // The job's package on the head, or the remote archive its runtime env names.
  const workingDir = workingDirUri(a.job.working_dir_package, a.job.runtime_env);
  const source = workingDir
    ? await deps.workspace.acquireUri(workingDir, 'working_dir', o.signal).catch(inWorkDir(`could not fetch working dir ${a.job.working_dir_package ?? redactUrl(workingDir)}`))
    : null;
  let dir: string;
  try {
    if (o.signal.aborted) throw new Error('aborted');
    dir = await deps.workspace.createTaskDir(o.key, source?.dir ?? null, o.group).catch(inWorkDir('could not copy the working dir'));
  } finally {
    source?.release();
  }
  try {
    const env = buildTaskEnv(a, { headAddress: deps.headAddress, nodeId: deps.nodeId(), home: deps.launcher.mode === 'bwrap' ? dir : undefined }, deps.runtimeEnv.agentEnv);
    const prepared = await prepareRuntimeEnv(a, env, { ...deps.runtimeEnv, signal: o.signal, taskDir: dir, output: o.output }).catch(setup(''));
    return { dir, env: prepared.env, argv: prepared.argv ?? null, readOnlyPaths: prepared.readOnlyPaths, release: () => prepared.release?.() };
  } catch (err) {
    deps.workspace.removeTaskDir(dir);
    throw err;
  }
}
