import fs from 'node:fs';
import path from 'node:path';
import { defaultDataDir, DEFAULTS } from '../../shared/config.js';
import { dataDirLayout } from '../../shared/dataDir.js';
import { RaysubError } from '../../shared/errors.js';
import { EXIT } from '../exitCodes.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stop the head that runs on this data dir (started with --detach or in another terminal). */
export async function stopCommand(flags: { dataDir?: string; timeout?: string }): Promise<number> {
  const dataDir = path.resolve(flags.dataDir ?? defaultDataDir());
  const { headInfo } = dataDirLayout(dataDir);
  let pid: number;
  try {
    pid = (JSON.parse(fs.readFileSync(headInfo, 'utf8')) as { pid: number }).pid;
  } catch {
    throw new RaysubError('USAGE', `no head is running on ${dataDir}`);
  }
  if (!alive(pid)) {
    fs.rmSync(headInfo, { force: true });
    process.stderr.write(`The head (pid ${pid}) was not running.\n`);
    return EXIT.OK;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + Number(flags.timeout ?? DEFAULTS.stopTimeoutS) * 1000;
  while (alive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      process.stderr.write(`The head (pid ${pid}) did not stop in time; killed it.\n`);
      return EXIT.OK;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stderr.write(`Stopped the head (pid ${pid}).\n`);
  return EXIT.OK;
}
