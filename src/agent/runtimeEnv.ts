/**
 * A task's environment: a scrubbed base, the job's env_vars (with `${VAR}` expanded from what the
 * task itself is given, never from the agent's own environment), and raysub's own variables,
 * which a job cannot override; then what the runtime_env builds (pip, npm, py_modules), under the
 * job's setup timeout.
 */
import { parseRuntimeEnv, type Assignment, type JobContext } from '../shared/protocol/index.js';
import { needsEnvSetup, setUpEnvs, type EnvCache, type PackageSource } from './envs/index.js';
import type { Lease } from './envs/cache.js';

/** Variables a worker inherits from the agent; everything else (tokens included) is dropped. */
const INHERITED = /^(PATH|HOME|LANG|LANGUAGE|LC_[A-Z]+|TZ|USER|LOGNAME|TMPDIR|PYENV_ROOT|PYENV_VERSION|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE)$/;

export interface RuntimeEnvContext {
  agentEnv: Readonly<Record<string, string>>;
  /** The agent's cache of built envs. */
  cache: EnvCache;
  /** Where py_modules packages are fetched and unpacked. */
  packages: PackageSource;
}

/** Ray's default for `runtime_env.config.setup_timeout_seconds`; -1 disables the timeout. */
export const DEFAULT_SETUP_TIMEOUT_S = 600;

export interface PrepareContext extends RuntimeEnvContext {
  signal: AbortSignal;
  taskDir: string;
  /** Setup output for the job's log. */
  output: (text: string) => void;
}

export interface PreparedEnv {
  env: Record<string, string>;
  readOnlyPaths: string[];
  /** A replacement command line, when the env needs one. */
  argv?: string[];
  /** Give back the cached envs the task holds; call when the task has ended. */
  release?: () => void;
}

/**
 * Replace `${NAME}` (braces only, as Ray does) by `from[NAME]`, or by nothing. Own properties only:
 * `${constructor}` is not a variable.
 */
export function expandVars(value: string, from: Readonly<Record<string, string>>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => (Object.hasOwn(from, name) ? (from[name] ?? '') : ''));
}

export interface TaskEnvPlace {
  headAddress: string;
  nodeId: string;
  /** The task's HOME when the sandbox gives it one (its own directory); else the agent's is passed on. */
  home?: string;
}

/** The most a variable may hold: the kernel refuses to start a program given one longer than 128 KiB. */
const MAX_VARIABLE_BYTES = 120 * 1024;

/**
 * What Ray's job driver is given in RAY_JOB_CONFIG_JSON_ENV_VAR: the runtime env and the metadata,
 * with Ray's defaults (`job_submission_id`, `job_name`) under what the job set. Too long for a
 * variable, the runtime env is left out, then the job's own metadata.
 */
export function rayJobConfig(job: Pick<JobContext, 'job_id' | 'runtime_env' | 'metadata'>): string {
  const defaults = { job_submission_id: job.job_id, job_name: job.job_id };
  const metadata = { ...defaults, ...(job.metadata ?? {}) };
  for (const config of [{ runtime_env: job.runtime_env, metadata }, { metadata }, { metadata: defaults }]) {
    const text = JSON.stringify(config);
    if (Buffer.byteLength(text) <= MAX_VARIABLE_BYTES) return text;
  }
  return JSON.stringify({ metadata: {} });
}

/**
 * The variables a task starts with. `${VAR}` in the job's env_vars sees only what the task is given
 * anyway — the inherited base (PATH, HOME, locale...), raysub's own variables — and then the job's
 * other env_vars (as written, not expanded again); never the rest of the agent's environment, so a
 * job cannot ask for the agent's token or any other secret the agent holds.
 */
export function buildTaskEnv(a: Assignment, place: TaskEnvPlace, agentEnv: Readonly<Record<string, string>>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(agentEnv)) if (INHERITED.test(k)) base[k] = v;
  if (place.home !== undefined) base.HOME = place.home;
  base.PYTHONUNBUFFERED = '1';
  const own: Record<string, string> = {
    RAYSUB_JOB_ID: a.job.job_id,
    RAYSUB_TASK_INDEX: String(a.task_index),
    RAYSUB_TASK_COUNT: String(a.task_count),
    RAYSUB_ARRAY_INDEX: String(a.array_index ?? a.task_index),
    RAYSUB_ATTEMPT: String(a.attempt),
    RAYSUB_ADDRESS: place.headAddress,
    RAYSUB_NODE_ID: place.nodeId,
    RAY_JOB_SUBMISSION_ID: a.job.job_id,
    RAY_JOB_CONFIG_JSON_ENV_VAR: rayJobConfig(a.job),
    CUDA_VISIBLE_DEVICES: a.gpu_ids.join(','),
  };
  const env: Record<string, string> = { ...base };
  for (const [k, v] of Object.entries(a.job.env_vars)) {
    // `PATH: "/opt/x/bin:${PATH}"` extends the task's own PATH; another name is the job's first.
    const from: Record<string, string> = { ...base, ...a.job.env_vars, ...own };
    if (Object.hasOwn(base, k)) from[k] = base[k] ?? '';
    else delete from[k];
    env[k] = expandVars(v, from);
  }
  return Object.assign(env, own);
}

/**
 * Prepare what the runtime_env asks for beyond variables. Stops promptly (killing installers) when
 * `ctx.signal` aborts; throws a readable error when setup fails or outlasts the setup timeout.
 */
export async function prepareRuntimeEnv(a: Assignment, env: Record<string, string>, ctx: PrepareContext): Promise<PreparedEnv> {
  const runtimeEnv = parseRuntimeEnv(a.job.runtime_env);
  if (!needsEnvSetup(runtimeEnv)) return { env, readOnlyPaths: [] };
  const timeoutS = runtimeEnv.config?.setup_timeout_seconds ?? DEFAULT_SETUP_TIMEOUT_S;
  const setup = new AbortController();
  const onAbort = (): void => setup.abort();
  if (ctx.signal.aborted) setup.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = timeoutS > 0 ? setTimeout(() => setup.abort(), timeoutS * 1000) : null;
  const leases: Lease[] = [];
  const readOnlyPaths: string[] = [];
  const started = Date.now();
  try {
    await setUpEnvs({ assignment: a, runtimeEnv, env, taskDir: ctx.taskDir, agentEnv: ctx.agentEnv, cache: ctx.cache, packages: ctx.packages, signal: setup.signal, output: ctx.output, leases, readOnlyPaths });
    ctx.output(`[raysub] runtime env ready in ${((Date.now() - started) / 1000).toFixed(2)}s\n`);
    return { env, readOnlyPaths, release: () => leases.forEach((l) => l.release()) };
  } catch (err) {
    for (const l of leases) l.release();
    if (setup.signal.aborted && !ctx.signal.aborted) {
      throw new Error(`runtime env setup did not finish within ${timeoutS}s (runtime_env.config.setup_timeout_seconds)`, { cause: err });
    }
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
