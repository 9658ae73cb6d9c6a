/**
 * Write a request body to a new file, chunk by chunk, with back-pressure. Every failure — the
 * caller refusing a chunk, the disk filling up, the client going away — rejects the promise and
 * never escapes as an unhandled 'error' event; the rest of the body is then read and dropped, so
 * the client still gets the answer rather than a reset connection.
 */
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { RaysubError } from '../shared/errors.js';

export function receiveFile(body: Readable, file: string, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(file, { mode: 0o600, flags: 'wx' });
    let settled = false;
    let ended = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      out.destroy();
      if (!ended) body.resume();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onData = (chunk: Buffer): void => {
      try {
        onChunk(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      if (!out.write(chunk)) {
        body.pause();
        out.once('drain', () => body.resume());
      }
    };
    out.on('error', fail);
    body.on('data', onData);
    body.on('error', fail);
    body.on('end', () => {
      ended = true;
      if (settled) return;
      out.once('finish', () => {
        if (settled) return;
        settled = true;
        resolve();
      });
      out.end();
    });
    body.on('close', () => {
      if (!ended) fail(new RaysubError('INVALID_REQUEST', 'the upload ended before its body was complete'));
    });
  });
}
