/**
 * What the sandbox adds to a worker's environment: a home, /tmp and user name that exist
 * inside, the interpreter links first on PATH (after the job's own runtime-env directories), and
 * Node's heap limit when memory is limited (inside the sandbox Node cannot read its cgroup).
 */
import type { LaunchSpec } from '../launcher.js';
import { isWithin } from './mountPlan.js';

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
/** Node's heap gets this share of the task's memory; the rest is for buffers, native code and children. */
const NODE_HEAP_SHARE = 0.75;

function withBinDir(pathVar: string | undefined, binDir: string, own: readonly string[]): string {
  const entries = (pathVar ?? DEFAULT_PATH).split(':').filter((e) => e !== '' && e !== binDir);
  // The job's own directories (a runtime env's bin/) stay in front of the agent's interpreters.
  let at = entries.findIndex((e) => !own.some((d) => isWithin(e, d)));
  if (at < 0) at = entries.length;
  entries.splice(at, 0, binDir);
  return entries.join(':');
}

export function taskEnv(spec: LaunchSpec, o: { sandboxed: boolean; user: string; binDir: string }): Record<string, string> {
  const env = { ...spec.env };
  if (o.sandboxed) {
    env.HOME = spec.cwd;
    env.TMPDIR = '/tmp';
    env.USER = o.user;
    env.LOGNAME = o.user;
    env.PATH = withBinDir(env.PATH, o.binDir, [spec.cwd, ...spec.readOnlyPaths]);
  }
  if (spec.resources.memory > 0 && !/--max-old-space-size/.test(env.NODE_OPTIONS ?? '')) {
    const mib = Math.max(16, Math.floor((spec.resources.memory * NODE_HEAP_SHARE) / 2 ** 20));
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ? env.NODE_OPTIONS + ' ' : ''}--max-old-space-size=${mib}`;
  }
  return env;
}
