/**
 * The first thing a sandboxed worker runs, as its own unprivileged user: set its limits and its
 * environment, tell the agent it is up, then run the worker. The environment travels in this
 * file rather than through bwrap, so that no process running as root ever holds the job's
 * variables (LD_PRELOAD and friends would otherwise run job code with root's privileges) and no
 * variable shows up in a command line that other users can read.
 */
import { shellLimitLines, type Rlimit } from './limits.js';

/** The fd on which the start script reports that the sandbox is up. */
export const READY_FD = 4;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names a POSIX shell treats specially (read-only in bash, or changing how the script runs). */
const SHELL_SPECIAL = new Set(['UID', 'EUID', 'PPID', 'GROUPS', 'SHELLOPTS', 'BASHOPTS', 'BASH_ENV', 'ENV', 'IFS', 'OPTIND', 'PWD', 'OLDPWD', 'PS4', 'LINENO', 'CDPATH']);

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The LINE of a `/bin/sh -c LINE` command, or null for any other argv. */
export function shellLine(argv: readonly string[]): string | null {
  const [sh, dashC, line] = argv;
  return argv.length === 3 && sh === '/bin/sh' && dashC === '-c' && line !== undefined ? line : null;
}

/**
 * The script bwrap runs as `/bin/sh /run/raysub/start`: limits, environment, "ok" on the ready
 * fd, then the worker. A `/bin/sh -c LINE` worker's LINE becomes the rest of the script (the same
 * shell runs it: one exec fewer); any other argv is exec'd.
 */
export function startScript(env: Readonly<Record<string, string>>, rlimits: readonly Rlimit[], envBinary: string | null, argv: readonly string[], mergeStderr = false): string {
  const lines = ['# raysub: worker start-up (limits, environment), then the worker itself', ...shellLimitLines(rlimits)];
  const odd: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (NAME.test(k) && !SHELL_SPECIAL.has(k)) lines.push(`export ${k}=${shellQuote(v)}`);
    else odd.push(shellQuote(`${k}=${v}`));
  }
  lines.push(`printf ok >&${READY_FD}; exec ${READY_FD}>&-`);
  if (mergeStderr) lines.push('exec 2>&1');
  const line = shellLine(argv);
  if (line !== null && (odd.length === 0 || !envBinary)) {
    return lines.join('\n') + '\n' + line + '\n';
  }
  // Names a shell cannot export (dots, dashes) are set by env(1) on the way to the worker.
  const setOdd = odd.length > 0 && envBinary ? `${shellQuote(envBinary)} -- ${odd.join(' ')} ` : '';
  lines.push(`exec ${setOdd}${argv.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}
