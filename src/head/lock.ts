import fs from 'node:fs';
import path from 'node:path';
import { RaysubError } from '../shared/errors.js';

/** One head per data dir: a lock file holding the owner's pid, taken over only if that pid is gone. Returns the release. */
export function takeLock(file: string): () => void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new RaysubError('USAGE', `another head (pid ${pid}) is already using this data dir (${path.dirname(file)})`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new RaysubError('INTERNAL', `could not take the lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
