/**
 * A task's environment: a scrubbed base, the job's env_vars (with `${VAR}` expanded from the
 * agent's environment, as Ray does), and raysub's own variables, which a job cannot override.
 */
import type { Assignment } from '../shared/protocol/index.js';

/** Variables a worker inherits from the agent; everything else (tokens included) is dropped. */
const INHERITED = /^(PATH|HOME|LANG|LANGUAGE|LC_[A-Z]+|TZ|USER|LOGNAME|TMPDIR|PYENV_ROOT|PYENV_VERSION|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE)$/;

export interface RuntimeEnvContext {
  agentEnv: Readonly<Record<string, string>>;
}

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
}

export function expandVars(value: string, from: Readonly<Record<string, string>>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => from[name] ?? '');
}

export function buildTaskEnv(a: Assignment, headAddress: string, nodeId: string, agentEnv: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(agentEnv)) if (INHERITED.test(k)) env[k] = v;
  env.PYTHONUNBUFFERED = '1';
  for (const [k, v] of Object.entries(a.env_vars)) env[k] = expandVars(v, agentEnv);
  Object.assign(env, {
    RAYSUB_JOB_ID: a.job_id,
    RAYSUB_TASK_INDEX: String(a.task_index),
    RAYSUB_TASK_COUNT: String(a.task_count),
    RAYSUB_ATTEMPT: String(a.attempt),
    RAYSUB_ADDRESS: headAddress,
    RAYSUB_NODE_ID: nodeId,
    RAY_JOB_SUBMISSION_ID: a.job_id,
    CUDA_VISIBLE_DEVICES: a.gpu_ids.join(','),
  });
  return env;
}

/** Prepare what the runtime_env asks for beyond variables. */
export async function prepareRuntimeEnv(_a: Assignment, env: Record<string, string>, _ctx: PrepareContext): Promise<PreparedEnv> {
  return { env, readOnlyPaths: [] };
}
