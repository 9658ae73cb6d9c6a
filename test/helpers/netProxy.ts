/**
 * A TCP proxy between the CLI and a real head, for network faults a test needs on purpose: drop
 * the connection after the head has answered a request (so the client never sees the answer), or
 * slow uploads down so a progress bar has time to show. Stopped when the test ends.
 */
import net from 'node:net';
import { onTestFinished } from 'vitest';

export interface ProxyOptions {
  /** Where to forward; read per connection, so a restarted head can be followed. */
  target: () => URL;
  /** Drop the connection at the first response byte to a request whose first line matches, once. */
  dropResponseOnce?: RegExp;
  /** Limit client-to-head bytes per second. */
  bytesPerSecond?: number;
  /**
   * Once, for a request whose first line matches: pass the first chunk of the response, then pass
   * nothing more while keeping the connection open (a connection that died without a word).
   */
  stallResponseOnce?: RegExp;
}

export interface Proxy {
  url: string;
  /** First lines of the requests seen ("POST /api/jobs/ HTTP/1.1"). */
  requests: string[];
  dropped: number;
  /** Bytes of responses swallowed by `stallResponseOnce`. */
  stalled: number;
  close(): Promise<void>;
}

const REQUEST_LINE = /^(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) \S+ HTTP\/1\.1/gm;

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  let armed = Boolean(opts.dropResponseOnce);
  let stallArmed = Boolean(opts.stallResponseOnce);
  const proxy: Proxy = { url: '', requests: [], dropped: 0, stalled: 0, close: async () => {} };
  const server = net.createServer((client) => {
    const target = opts.target();
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let dropNext = false;
    let stall: 'no' | 'after-first' | 'swallow' = 'no';
    client.on('data', (chunk: Buffer) => {
      for (const m of chunk.toString('latin1').matchAll(REQUEST_LINE)) {
        proxy.requests.push(m[0]);
        if (stallArmed && opts.stallResponseOnce?.test(m[0])) {
          stallArmed = false;
          stall = 'after-first';
        }
        if (armed && opts.dropResponseOnce?.test(m[0])) {
          armed = false;
          dropNext = true;
        }
      }
      upstream.write(chunk);
      if (opts.bytesPerSecond) {
        client.pause();
        setTimeout(() => client.resume(), (chunk.length / opts.bytesPerSecond) * 1000);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (dropNext) {
        // The head has committed and answered; the client never hears it.
        proxy.dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      if (stall === 'swallow') {
        proxy.stalled += chunk.length;
        return;
      }
      if (stall === 'after-first') stall = 'swallow';
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  proxy.url = `http://127.0.0.1:${address.port}`;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  onTestFinished(() => proxy.close());
  return proxy;
}

/** A port that was free a moment ago (for a head that must come back on the same address). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
