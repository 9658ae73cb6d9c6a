import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseWith } from '../../shared/protocol/index.js';
import { LinePrefixer, followLogs } from '../logFollower.js';
import type { HeadContext } from '../context.js';

const idParams = z.object({ id: z.string().min(1).max(200) });
const streamQuery = z.object({ follow: z.enum(['true', 'false', '1', '0']).optional() });

/** Log endpoints: Ray's whole-file GET and WebSocket tail, and raysub's NDJSON stream. */
export function logRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/jobs/:id/logs', async (req) => {
      const { id } = parseWith(idParams, req.params);
      return { logs: ctx.jobs.logsText(id) };
    });

    // Ray's tail: text frames, closed once the job is terminal and its log fully sent.
    app.get('/api/jobs/:id/logs/tail', { websocket: true }, (socket, req) => {
      const ac = new AbortController();
      socket.on('close', () => ac.abort());
      socket.on('error', () => ac.abort());
      const run = async (): Promise<void> => {
        const { id } = parseWith(idParams, req.params);
        const row = ctx.jobs.row(id);
        const prefixer = row.parallel > 1 ? new LinePrefixer() : null;
        const status = () => ctx.jobs.row(id).status;
        for await (const piece of followLogs(ctx, id, { follow: true, signal: ac.signal, status, taskCount: row.parallel })) {
          const text = prefixer ? prefixer.push(piece) : piece.text;
          for (let i = 0; i < text.length; i += 20_000) socket.send(text.slice(i, i + 20_000));
        }
        const rest = prefixer?.flush();
        if (rest) socket.send(rest);
        socket.close(1000, 'job finished');
      };
      run().catch((err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        socket.close(1011, message.slice(0, 120));
      });
    });

    // raysub's stream: one JSON object per line, with the task and stream of each piece.
    app.get('/api/jobs/:id/logs/stream', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      const q = parseWith(streamQuery, req.query);
      const row = ctx.jobs.row(id);
      const ac = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) ac.abort();
      });
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
      const follow = q.follow === 'true' || q.follow === '1';
      const status = () => ctx.jobs.row(id).status;
      try {
        for await (const p of followLogs(ctx, id, { follow, signal: ac.signal, status, taskCount: row.parallel })) {
          if (!res.write(JSON.stringify({ task: p.task, stream: p.stream, data: p.text }) + '\n')) {
            await new Promise((r) => res.once('drain', r));
          }
        }
        res.end(JSON.stringify({ end: true, status: status() }) + '\n');
      } catch (err) {
        req.log.warn({ err }, 'log stream ended early');
        res.destroy();
      }
    });
  };
}
