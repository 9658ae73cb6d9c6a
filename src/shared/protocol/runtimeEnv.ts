import { z } from 'zod';
import { RaysubError } from '../errors.js';
import { describeZodError } from './common.js';

/**
 * The runtime_env a job may carry. Field names follow Ray's where Ray has them; `npm` and
 * `sandbox` are raysub's own. As on Ray, fields whose name starts with `_` (Ray's clients add
 * `_ray_commit`) are ignored; Ray's fields raysub does not provide are refused by name, and
 * unknown fields with the list of known ones.
 */
const pipSchema = z.union([
  z.array(z.string().min(1)),
  z.string().min(1), // a requirements file inside the working dir
  z.strictObject({
    packages: z.union([z.array(z.string().min(1)), z.string().min(1)]),
    pip_install_options: z.array(z.string()).optional(),
    pip_check: z.boolean().optional(),
    pip_version: z.string().optional(),
  }),
]);

const npmSchema = z.union([
  z.boolean(),
  z.strictObject({
    /** Extra arguments for `npm ci` (for example a registry or `--omit=dev`). */
    npm_install_options: z.array(z.string()).optional(),
  }),
]);

export const sandboxRequestSchema = z.strictObject({
  /** "none" leaves only loopback inside the sandbox. */
  network: z.enum(['host', 'none']).optional(),
  /** Refuse to run unless the node provides at least this isolation. */
  require: z.enum(['none', 'process', 'bwrap']).optional(),
  /** Let tasks create user namespaces and mount in them (refused by default: docs/sandbox.md). */
  user_namespaces: z.boolean().optional(),
  /**
   * Keep stderr a stream of its own (marked, coloured by raysub's CLI) instead of one pipe with
   * stdout; the order between the two is then only the order the agent read them in (docs/logs.md).
   */
  separate_stderr: z.boolean().optional(),
});

export const runtimeEnvFields = {
  working_dir: z.string().min(1),
  excludes: z.array(z.string()),
  env_vars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name'), z.string()),
  pip: pipSchema,
  py_modules: z.array(z.string().min(1)),
  npm: npmSchema,
  // Every key Ray's client sends (it fills in all three): the timeout is honoured; the others are
  // accepted and documented (docs/runtime-env.md).
  config: z.strictObject({
    setup_timeout_seconds: z
      .number()
      .refine((v) => v === -1 || v > 0, 'must be a positive number of seconds, or -1 for no timeout')
      .optional(),
    eager_install: z.boolean().optional(),
    log_files: z.array(z.string()).max(1000).optional(),
  }),
  sandbox: sandboxRequestSchema,
};

export const knownRuntimeEnvFields = Object.keys(runtimeEnvFields);

/** Ray's runtime_env fields that raysub does not provide (docs/ray-compat.md says why). */
const RAY_ONLY_FIELDS = ['conda', 'uv', 'container', 'image_uri', 'java_jars', 'py_executable', 'worker_process_setup_hook', 'mpi', 'nsight', 'rocprof_sys'];

const runtimeEnvObject = z.strictObject({
  working_dir: runtimeEnvFields.working_dir.optional(),
  excludes: runtimeEnvFields.excludes.optional(),
  env_vars: runtimeEnvFields.env_vars.optional(),
  pip: runtimeEnvFields.pip.optional(),
  py_modules: runtimeEnvFields.py_modules.optional(),
  npm: runtimeEnvFields.npm.optional(),
  config: runtimeEnvFields.config.optional(),
  sandbox: runtimeEnvFields.sandbox.optional(),
});

export type RuntimeEnv = z.infer<typeof runtimeEnvObject>;

/** Validate a runtime_env, with a clear message for an unknown field. */
export function parseRuntimeEnv(value: unknown): RuntimeEnv {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new RaysubError('INVALID_RUNTIME_ENV', 'runtime_env must be an object');
  }
  const stripped = Object.fromEntries(Object.entries(value).filter(([k, v]) => v !== null && v !== undefined && !k.startsWith('_')));
  const rayOnly = Object.keys(stripped).filter((k) => RAY_ONLY_FIELDS.includes(k));
  if (rayOnly.length) {
    throw new RaysubError(
      'INVALID_RUNTIME_ENV',
      `runtime_env field${rayOnly.length > 1 ? 's' : ''} ${rayOnly.map((k) => `"${k}"`).join(', ')} ${rayOnly.length > 1 ? 'are' : 'is'} Ray's but not provided by raysub (see docs/ray-compat.md); known fields: ${knownRuntimeEnvFields.join(', ')}`,
    );
  }
  const unknown = Object.keys(stripped).filter((k) => !knownRuntimeEnvFields.includes(k));
  if (unknown.length) {
    throw new RaysubError(
      'INVALID_RUNTIME_ENV',
      `unknown runtime_env field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; known fields: ${knownRuntimeEnvFields.join(', ')}`,
    );
  }
  const result = runtimeEnvObject.safeParse(stripped);
  if (!result.success) throw new RaysubError('INVALID_RUNTIME_ENV', `runtime_env.${describeZodError(result.error)}`);
  return result.data;
}
