import type { FastifyPluginAsync } from 'fastify';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { RaysubError } from '../../shared/errors.js';
import { parseWith } from '../../shared/protocol/index.js';
import { checkPackageAddress } from '../packageStore.js';
import type { HeadContext } from '../context.js';

// Lengths and alphabets are checked by checkPackageAddress, which says what a name must be.
const params = z.object({ protocol: z.string(), name: z.string() });

/** Ray's package endpoints (GET = exists?, PUT = upload), plus a download route for agents. */
export function packageRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    // Uploads are streamed to disk by the store, never buffered or parsed here.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    app.get('/api/packages/:protocol/:name', async (req, reply) => {
      const { protocol, name } = parseWith(params, req.params);
      checkPackageAddress(protocol, name);
      if (!ctx.packages.has(name)) throw new RaysubError('PACKAGE_NOT_FOUND', `package ${protocol}://${name} not found`);
      // A client that saw it exists submits a job naming it next: keep it from collection meanwhile.
      ctx.packages.touch(name);
      return reply.status(200).send({ exists: true, size: ctx.packages.size(name) });
    });

    // Agents fetch the packages their tasks need; users may read what they uploaded.
    app.get('/api/packages/:protocol/:name/content', { config: { access: 'user-or-agent' } }, async (req, reply) => {
      const { protocol, name } = parseWith(params, req.params);
      checkPackageAddress(protocol, name);
      const size = ctx.packages.size(name);
      if (size === null) throw new RaysubError('PACKAGE_NOT_FOUND', `package ${protocol}://${name} not found`);
      void reply.header('content-length', size).type('application/octet-stream');
      return reply.send(fs.createReadStream(ctx.packages.pathOf(name)));
    });

    app.put('/api/packages/:protocol/:name', async (req) => {
      const { protocol, name } = parseWith(params, req.params);
      checkPackageAddress(protocol, name);
      const declared = req.headers['content-length'] ? Number(req.headers['content-length']) : undefined;
      const body = (req.body as Readable | undefined) ?? req.raw;
      const { size, created } = await ctx.packages.put(name, body, declared);
      req.log.info({ name, size, created }, 'package stored');
      return { uploaded: true, size };
    });
  };
}
