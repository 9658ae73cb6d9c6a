import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { archiveAsPackage, packDirectory, uploadPyModules, type PackedDir } from '../../client/index.js';
import { DEFAULT_MAX_PACKAGE_BYTES, DEFAULTS, parseBytes, parseMemory } from '../../shared/config.js';
import { RaysubError } from '../../shared/errors.js';
import { newSubmissionId } from '../../shared/ids.js';
import { parseArraySpec } from '../../shared/arraySpec.js';
import { JOB_NAME_KEY, parseRuntimeEnv, type JobSubmitRequest, type RuntimeEnv } from '../../shared/protocol/index.js';
import { ProgressBar } from '../../ui/progress.js';
import type { CliContext } from '../context.js';
import { EXIT, exitCodeForJob } from '../exitCodes.js';
import { describeOutcome, patientClient, printLogs } from '../follow.js';

export interface SubmitFlags {
  submissionId?: string;
  jobId?: string;
  workingDir?: string;
  runtimeEnv?: string;
  runtimeEnvJson?: string;
  metadataJson?: string;
  entrypointNumCpus?: string;
  entrypointNumGpus?: string;
  entrypointMemory?: string;
  entrypointResources?: string;
  wait?: boolean;
  parallel?: string;
  maxRetries?: string;
  retryBackoff?: string;
  timeout?: string;
  priority?: string;
  waitForCapacity?: boolean;
  /** `k=v`, repeatable: metadata entries that `job list --label` finds. */
  label?: string[];
  name?: string;
  hold?: boolean;
  /** false with --no-memory-limit. */
  memoryLimit?: boolean;
  array?: string;
  maxConcurrent?: string;
  /** `ID[,ID...]`: run after these jobs succeeded. */
  after?: string;
  /** `ID[,ID...]`: run after these jobs ended, however. */
  afterAny?: string;
  stopSignal?: string;
  stopGrace?: string;
  maxPackageSize?: string;
  json?: boolean;
  quiet?: boolean;
}

/** Join argv as a shell command line (as Ray does with shlex.join); one argument is taken as-is. */
export function joinEntrypoint(args: readonly string[]): string {
  if (args.length === 1) return args[0] ?? '';
  return args.map((a) => (/^[A-Za-z0-9_\-+=.,:/@%^]+$/.test(a) ? a : `'${a.replace(/'/g, `'"'"'`)}'`)).join(' ');
}

function parseJsonFlag(name: string, value: string | undefined): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new RaysubError('USAGE', `${name} is not valid JSON: ${(err as Error).message}`);
  }
}

function num(name: string, value: string | undefined, opts: { int?: boolean; min?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || n < (opts.min ?? 0)) {
    throw new RaysubError('USAGE', `${name} must be ${opts.int ? 'a whole number' : 'a number'} >= ${opts.min ?? 0}, got "${value}"`);
  }
  return n;
}

/** The runtime env from --runtime-env (JSON or YAML file) or --runtime-env-json, then --working-dir. */
export function loadRuntimeEnv(flags: Pick<SubmitFlags, 'runtimeEnv' | 'runtimeEnvJson' | 'workingDir' | 'stopSignal' | 'stopGrace'>): RuntimeEnv {
  if (flags.runtimeEnv && flags.runtimeEnvJson) throw new RaysubError('USAGE', 'use either --runtime-env or --runtime-env-json, not both');
  let raw: unknown = {};
  if (flags.runtimeEnv) {
    let text: string;
    try {
      text = fs.readFileSync(flags.runtimeEnv, 'utf8');
    } catch {
      throw new RaysubError('USAGE', `cannot read runtime env file ${flags.runtimeEnv}`);
    }
    try {
      raw = YAML.parse(text) ?? {};
    } catch (err) {
      throw new RaysubError('USAGE', `${flags.runtimeEnv} is neither JSON nor YAML: ${(err as Error).message}`);
    }
  } else if (flags.runtimeEnvJson) {
    raw = parseJsonFlag('--runtime-env-json', flags.runtimeEnvJson);
  }
  const env = parseRuntimeEnv(raw);
  if (flags.workingDir) env.working_dir = flags.workingDir;
  return withStopFlags(env, flags);
}

/** `--stop-signal` and `--stop-grace` are Ray's two variables for how a job is stopped, in its env_vars. */
function withStopFlags(env: RuntimeEnv, flags: Pick<SubmitFlags, 'stopSignal' | 'stopGrace'>): RuntimeEnv {
  const vars: Record<string, string> = {};
  if (flags.stopSignal !== undefined) {
    const s = flags.stopSignal.toUpperCase().replace(/^(?!SIG)/, 'SIG');
    if (s !== 'SIGTERM' && s !== 'SIGINT') throw new RaysubError('USAGE', `--stop-signal must be SIGTERM or SIGINT, got "${flags.stopSignal}"`);
    vars.RAY_JOB_STOP_SIGNAL = s;
  }
  if (flags.stopGrace !== undefined) vars.RAY_JOB_STOP_WAIT_TIME_S = String(num('--stop-grace', flags.stopGrace));
  return Object.keys(vars).length ? { ...env, env_vars: { ...env.env_vars, ...vars } } : env;
}

/** Turn a local working_dir (directory or archive) into an uploaded package URI. */
export async function uploadWorkingDir(ctx: CliContext, env: RuntimeEnv, maxBytes: number, quiet: boolean): Promise<RuntimeEnv> {
  const wd = env.working_dir;
  if (!wd || /^[a-z][a-z0-9+.-]*:\/\//i.test(wd)) return env;
  const local = path.resolve(wd);
  let packed: PackedDir;
  if (fs.existsSync(local) && fs.statSync(local).isFile() && /\.(zip|tar\.gz|tgz)$/.test(local)) packed = archiveAsPackage(local);
  else packed = await packDirectory(local, { excludes: env.excludes, maxBytes });
  try {
    if (await ctx.client.hasPackage(packed.name)) {
      if (!quiet) ctx.err.write(`Working dir unchanged (${packed.sha256.slice(0, 12)}); not uploading.\n`);
    } else {
      const bar = new ProgressBar(ctx.err, 'Uploading', Boolean(ctx.err.isTTY) && !quiet);
      await ctx.client.uploadPackage(packed.name, packed.file, (sent, total) => bar.update(sent, total));
      bar.finish();
      if (!quiet) ctx.err.write(`Uploaded working dir: ${packed.fileCount} files, ${(packed.size / 1024).toFixed(1)} KiB (${packed.sha256.slice(0, 12)}).\n`);
    }
  } finally {
    packed.cleanup();
  }
  return { ...env, working_dir: packed.uri };
}

/** `--array`, checked here so a typo is a usage error before anything is uploaded. */
function arrayFlag(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    parseArraySpec(value);
  } catch (err) {
    throw new RaysubError('USAGE', `--array: ${(err as Error).message}`);
  }
  return value;
}

/** `a,b` -> ["a", "b"] (undefined when not given). */
function idList(name: string, value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new RaysubError('USAGE', `${name} needs one or more job ids, comma-separated`);
  return ids;
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$/;

/** `--label k=v` (repeatable) and `--name N`, merged into the metadata: labels are metadata entries. */
export function labelsOf(flags: Pick<SubmitFlags, 'label' | 'name'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of flags.label ?? []) {
    const eq = l.indexOf('=');
    const key = eq < 0 ? l : l.slice(0, eq);
    if (eq < 0 || !LABEL_KEY.test(key)) throw new RaysubError('USAGE', `--label must be key=value with a key of letters, digits, "_", ".", "/" or "-" (at most 128), got "${l}"`);
    if (key === JOB_NAME_KEY) throw new RaysubError('USAGE', `--label ${JOB_NAME_KEY}=...: use --name`);
    if (out[key] !== undefined && out[key] !== l.slice(eq + 1)) throw new RaysubError('USAGE', `--label ${key} given twice with different values`);
    out[key] = l.slice(eq + 1);
  }
  if (flags.name !== undefined) {
    if (flags.name.trim() === '' || flags.name.length > 256) throw new RaysubError('USAGE', '--name must be 1-256 characters');
    out[JOB_NAME_KEY] = flags.name;
  }
  return out;
}

export function buildSubmitRequest(flags: SubmitFlags, entrypoint: string, runtimeEnv: RuntimeEnv): JobSubmitRequest & { submission_id: string } {
  const given = parseJsonFlag('--metadata-json', flags.metadataJson) as Record<string, string> | undefined;
  const labels = labelsOf(flags);
  for (const [k, v] of Object.entries(labels)) {
    if (given && Object.hasOwn(given, k) && given[k] !== v) throw new RaysubError('USAGE', `--metadata-json and ${k === JOB_NAME_KEY ? '--name' : `--label ${k}`} give "${k}" different values`);
  }
  const metadata = Object.keys(labels).length ? { ...given, ...labels } : given;
  const resources = parseJsonFlag('--entrypoint-resources', flags.entrypointResources) as Record<string, number> | undefined;
  const raysub = {
    parallel: num('--parallel', flags.parallel, { int: true, min: 1 }),
    max_retries: num('--max-retries', flags.maxRetries, { int: true }),
    retry_backoff_s: num('--retry-backoff', flags.retryBackoff),
    timeout_s: num('--timeout', flags.timeout),
    priority: num('--priority', flags.priority, { int: true, min: -1000 }),
    // raysub's CLI defaults (docs/ray-compat.md#resources), sent explicitly: the API's are Ray's.
    wait_for_capacity: flags.waitForCapacity === true,
    memory_limit: flags.memoryLimit !== false,
    hold: flags.hold || undefined,
    max_concurrent: num('--max-concurrent', flags.maxConcurrent, { int: true, min: 1 }),
    array: arrayFlag(flags.array),
    after: idList('--after', flags.after),
    after_any: idList('--after-any', flags.afterAny),
  };
  return {
    entrypoint,
    submission_id: flags.submissionId ?? flags.jobId ?? newSubmissionId(),
    runtime_env: runtimeEnv,
    metadata,
    entrypoint_num_cpus: num('--entrypoint-num-cpus', flags.entrypointNumCpus) ?? DEFAULTS.entrypointNumCpus,
    entrypoint_num_gpus: num('--entrypoint-num-gpus', flags.entrypointNumGpus),
    entrypoint_memory: parseMemory('entrypoint-memory', flags.entrypointMemory),
    entrypoint_resources: resources,
    raysub,
  };
}

/** The runtime env from the flags, with its local working dir and py_modules uploaded as packages. */
export async function runtimeEnvWithPackages(ctx: CliContext, flags: SubmitFlags, quiet: boolean): Promise<RuntimeEnv> {
  const maxBytes = parseBytes('max-package-size', flags.maxPackageSize) ?? DEFAULT_MAX_PACKAGE_BYTES;
  const withWorkingDir = await uploadWorkingDir(ctx, loadRuntimeEnv(flags), maxBytes, quiet);
  return uploadPyModules(ctx.client, withWorkingDir, {
    maxBytes,
    onUpload: (u) => quiet || ctx.err.write(`py_modules: ${u.local} -> ${u.uri}${u.uploaded ? ` (uploaded ${(u.size / 1024).toFixed(1)} KiB)` : ' (unchanged)'}\n`),
  });
}

export async function submitCommand(ctx: CliContext, args: string[], flags: SubmitFlags): Promise<number> {
  if (args.length === 0) throw new RaysubError('USAGE', 'missing entrypoint: raysub job submit [options] -- <command...>');
  const quiet = Boolean(flags.quiet || flags.json);
  const env = await runtimeEnvWithPackages(ctx, flags, quiet);
  const req = buildSubmitRequest(flags, joinEntrypoint(args), env);
  const { submission_id: id } = await ctx.client.submitJob(req);
  if (flags.wait === false) {
    if (flags.json) ctx.out.write(JSON.stringify({ submission_id: id }) + '\n');
    else {
      ctx.err.write(`Job '${id}' submitted.\n`);
      ctx.err.write(`  Status:  raysub job status ${id}\n  Logs:    raysub job logs ${id} --follow\n  Stop:    raysub job stop ${id}\n`);
      ctx.out.write(id + '\n');
    }
    return EXIT.OK;
  }
  if (!quiet) ctx.err.write(`Job '${id}' submitted; following its logs (Ctrl-C stops following, not the job).\n`);
  // Ctrl-C lets go of the job, which runs on: say how to come back to it, and exit with a code of its own.
  const detach = (): void => {
    ctx.err.write(`\nraysub: stopped following job '${id}'; it keeps running.\n  Reattach: raysub job logs ${id} --follow\n  Stop it:  raysub job stop ${id}\n`);
    process.exit(EXIT.DETACHED);
  };
  process.once('SIGINT', detach);
  try {
    const patient = patientClient(ctx);
    const first = await patient.getJob(id);
    // With --json, stdout holds only the result: the job's output goes to stderr.
    await printLogs(ctx, id, { follow: true, prefix: first.raysub.parallel > 1, quiet: flags.quiet, toStderr: flags.json });
    const job = await patient.waitForJob(id);
    if (flags.json) ctx.out.write(JSON.stringify(job) + '\n');
    else if (!flags.quiet) ctx.err.write(describeOutcome(ctx, job) + '\n');
    return exitCodeForJob(job);
  } finally {
    process.off('SIGINT', detach);
  }
}
