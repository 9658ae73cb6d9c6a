/** The file worker thread: runs one FileOp at a time for the agent (see index.ts). */
import { parentPort } from 'node:worker_threads';
import { RaysubError } from '../../shared/errors.js';
import { runFileOp, type FileOp, type FileOpReply } from './ops.js';

const port = parentPort;
if (port) {
  port.on('message', (msg: { id: number; op: FileOp }) => {
    runFileOp(msg.op).then(
      (result) => port.postMessage({ id: msg.id, ok: true, result } satisfies FileOpReply),
      (err: unknown) => {
        const e = err as Partial<NodeJS.ErrnoException>;
        const reply: FileOpReply = {
          id: msg.id,
          ok: false,
          error: { message: e.message ?? String(err), raysubCode: err instanceof RaysubError ? err.code : null, errno: typeof e.code === 'string' ? e.code : null },
        };
        port.postMessage(reply);
      },
    );
  });
}
