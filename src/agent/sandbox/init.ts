/**
 * raysub-init (native/raysub-init.c): the small static program a sandboxed worker starts with
 * when the build could compile it. It replaces setpriv and the shell start script: it reads the
 * task's start file, gives the task a session keyring of its own, drops to the task's uid with no
 * capabilities, sets no_new_privs, the limits and the seccomp filter, reports on the ready fd and
 * execs the worker with exactly the task's environment.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RLIMITS, type Rlimit } from './limits.js';
import { shellLine } from './startScript.js';

/** The start-file format (and --version) of the raysub-init this agent speaks to. */
export const INIT_FORMAT = 'raysub-init 6';

/** Built by scripts/build-native.mjs; this module runs from src/ in tests and dist/ otherwise. */
const BUILT = path.resolve(import.meta.dirname, '../../../dist/native/raysub-init');
const BUILD_SCRIPT = path.resolve(import.meta.dirname, '../../../scripts/build-native.mjs');
let buildTried = false;

/**
 * An installed package builds raysub-init when it is installed (its postinstall); one installed
 * with --ignore-scripts, or before a compiler was, builds it at the agent's first start instead,
 * where a compiler exists and the package's directory is writable. Without one the agent says why
 * and starts workers through setpriv and a shell script.
 */
function buildOnce(): void {
  if (buildTried || !fs.existsSync(BUILD_SCRIPT)) return;
  buildTried = true;
  try {
    execFileSync(process.execPath, [BUILD_SCRIPT], { timeout: 120_000, stdio: 'ignore' });
  } catch {
    // the reason is reported by findInit: the program does not exist
  }
}

/**
 * The program to use: `RAYSUB_SANDBOX_INIT` (a path, or "none" for the setpriv and shell path),
 * else the one the build made. Null when there is none or it does not run here.
 */
export function findInit(env: Readonly<Record<string, string | undefined>> = process.env): { path: string | null; why: string } {
  const wanted = env.RAYSUB_SANDBOX_INIT;
  if (wanted === 'none') return { path: null, why: 'disabled (RAYSUB_SANDBOX_INIT=none)' };
  const candidate = wanted ? path.resolve(wanted) : BUILT;
  if (!wanted && !fs.existsSync(candidate)) buildOnce();
  if (!fs.existsSync(candidate)) return { path: null, why: `${candidate} does not exist (built by \`npm run build\` where a C compiler is installed)` };
  try {
    const out = execFileSync(candidate, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (!out.startsWith(INIT_FORMAT)) return { path: null, why: `${candidate} is not ${INIT_FORMAT}` };
  } catch (err) {
    return { path: null, why: `${candidate} does not run: ${(err as Error).message.split('\n')[0]}` };
  }
  return { path: candidate, why: 'ok' };
}

/** The start file raysub-init reads: NUL-terminated fields (format described in native/raysub-init.c, read by native/start.c). */
export function initStartFile(o: {
  env: Readonly<Record<string, string>>;
  rlimits: readonly Rlimit[];
  seccomp?: Buffer | null;
  uid: number | null;
  argv: readonly string[];
  cwd?: string | null;
  /** The worker's stderr is its stdout (one ordered stream). */
  mergeStderr?: boolean;
}): Buffer {
  const { env, rlimits, seccomp = null, uid, argv, cwd = null, mergeStderr = false } = o;
  if (argv.length === 0) throw new Error('empty command');
  if (cwd === '-') throw new Error('a working directory named "-"');
  const entries = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const id = uid === null ? '-' : String(uid);
  const limits = rlimits.flatMap((l) => [RLIMITS[l.name].what, String(RLIMITS[l.name].resource), String(Math.floor(l.value))]);
  const fields = [INIT_FORMAT, id, id, cwd ?? '-', seccomp ? seccomp.toString('hex') : '-', mergeStderr ? 'merge' : 'keep', String(rlimits.length), ...limits, String(entries.length), ...entries, String(argv.length), ...argv];
  for (const f of fields) if (f.includes('\0')) throw new Error('a NUL byte in the environment or command');
  return Buffer.from(fields.join('\0') + '\0');
}

/** Words made only of characters no POSIX shell treats specially. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+,./:=-]+$/;

/**
 * A `/bin/sh -c LINE` whose LINE is a plain command naming one of the sandbox's interpreters
 * (`python3 -c pass`, `node app.js --port 8080`) means the same words exec'd directly: no quoting,
 * expansion, redirection or assignment for a shell to do, and a command that exists. Anything
 * else still goes through the shell.
 */
export function directArgv(argv: readonly string[], interpreters: { has(name: string): boolean }): string[] | null {
  const line = shellLine(argv);
  if (line === null) return null;
  const words = line.trim().split(/[ \t]+/);
  const first = words[0];
  if (first === undefined || !interpreters.has(first)) return null;
  return words.every((w) => PLAIN_WORD.test(w)) ? words : null;
}
