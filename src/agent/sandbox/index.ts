import type { AgentOptions } from '../../shared/config.js';
import type { Logger } from '../../shared/log.js';
import { ProcessLauncher, type Launcher } from '../launcher.js';

/** Pick the strongest launcher this machine supports (or the one the operator asked for). */
export async function chooseLauncher(opts: Pick<AgentOptions, 'sandbox'>, log: Logger): Promise<Launcher> {
  if (opts.sandbox === 'none') return new ProcessLauncher('sandbox disabled by the operator (--sandbox none)');
  const launcher = new ProcessLauncher();
  if (opts.sandbox === 'auto') log.warn({ detail: launcher.detail }, 'workers run without a sandbox');
  return launcher;
}
