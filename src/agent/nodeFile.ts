/**
 * An agent's identity lives in its work dir: `node.json` keeps the name it registered under and
 * its last node id, so a restarted agent takes back its own registration (and a default name it
 * chose stays the same across restarts); `agent.lock` keeps two agents out of one work dir.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { writePrivateFile } from '../shared/dataDir.js';
import { RaysubError } from '../shared/errors.js';

const nodeFileSchema = z.object({ name: z.string().min(1).max(128), node_id: z.string().max(100).optional() });
export type NodeFile = z.infer<typeof nodeFileSchema>;

export const NODE_FILE = 'node.json';
export const AGENT_LOCK = 'agent.lock';

export function readNodeFile(workDir: string): NodeFile | null {
  try {
    const parsed = nodeFileSchema.safeParse(JSON.parse(fs.readFileSync(path.join(workDir, NODE_FILE), 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function writeNodeFile(workDir: string, f: NodeFile): void {
  writePrivateFile(path.join(workDir, NODE_FILE), JSON.stringify(f) + '\n');
}

/** A default name that is not taken: the host name with a short random suffix. */
export function alternativeName(base: string): string {
  return `${base.slice(0, 120)}-${crypto.randomBytes(2).toString('hex')}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the work dir for this process; throws USAGE when another live agent holds it. Returns the release. */
export function lockWorkDir(workDir: string): () => void {
  fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const file = path.join(workDir, AGENT_LOCK);
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(file, `${process.pid} ${os.hostname()}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          fs.rmSync(file, { force: true });
        } catch {
          // a work dir that takes no writes any more: the next start finds the lock's process gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8').split(' ')[0]);
      if (pid && pid !== process.pid && alive(pid)) {
        throw new RaysubError('USAGE', `another agent (pid ${pid}) uses the work dir ${workDir}; give this one its own --work-dir`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new RaysubError('INTERNAL', `could not take the lock ${file}`);
}
