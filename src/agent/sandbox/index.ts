/**
 * Choosing how workers run: the strongest mechanism this machine offers (or the one the operator
 * asked for), probed for real at start-up, and described in one line for the log and `raysub nodes`.
 */
import { agentProcessEnv } from '../../shared/config.js';
import { RaysubError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { ProcessLauncher, type Launcher } from '../launcher.js';
import { fdTaskCapacity, openCgroups } from './probe.js';
import { probeBwrap } from './probeBwrap.js';
import { SandboxLauncher } from './sandboxLauncher.js';
import { describeSeccomp } from './seccomp.js';
import type { SandboxOptions } from './settings.js';
import { removeStateDir } from './stateDir.js';

export type { SandboxOptions } from './settings.js';

/** Pick the strongest launcher this machine supports (or the one the operator asked for). */
export async function chooseLauncher(opts: SandboxOptions, log: Logger): Promise<Launcher> {
  if (opts.sandbox === 'none') return new ProcessLauncher('sandbox disabled by the operator (--sandbox none)', fdTaskCapacity());
  const agentEnv = agentProcessEnv();
  const cg = openCgroups(opts);
  const limits = cg.cgroups?.describe() ?? 'no cgroup limits';
  if (cg.problems.length > 0) log.warn({ problems: cg.problems }, 'some limits or cgroup hierarchies are unusable');

  let reason = 'not requested (--sandbox process)';
  if (opts.sandbox !== 'process') {
    const probed = await probeBwrap(opts, agentEnv, cg, log);
    if (probed.ok) {
      const detail = `bubblewrap ${probed.settings.bwrap?.version ?? ''}; ${probed.who}; ${describeSeccomp(probed.settings.seccomp)}; ${limits}; ${probed.interpreters}`;
      const launcher = new SandboxLauncher('bwrap', detail, probed.settings, { log: log.child({ component: 'sandbox' }), ownsStateDir: true });
      launcher.prestart();
      return launcher;
    }
    reason = probed.reason;
    if (opts.sandbox === 'bwrap') {
      cg.cgroups?.close();
      removeStateDir(cg.settings.stateDir);
      throw new RaysubError('USAGE', `--sandbox bwrap: bubblewrap cannot be used on this machine: ${reason}`);
    }
  }
  const detail = `no filesystem isolation (bubblewrap: ${reason}); ${limits}`;
  log.warn({ detail }, 'workers run without a bubblewrap sandbox');
  if (!cg.cgroups) {
    removeStateDir(cg.settings.stateDir);
    return new ProcessLauncher(detail, fdTaskCapacity());
  }
  return new SandboxLauncher('process', detail, { ...cg.settings, bwrap: null, uids: null }, { log: log.child({ component: 'sandbox' }), ownsStateDir: true });
}
