/**
 * The three parts of undici a call to the head uses (the connection agent, the TLS connector, and
 * `request`), loaded one by one. undici's main module loads every part it has — fetch, WebSocket,
 * mocks, caches, proxies, interceptors: 110 files where a call needs about 30 — and that was the
 * largest single cost of a short CLI command such as `raysub job list` (about half of its module
 * loading). The parts are the same files the main module loads, so a process that loads both
 * (the agent's in-job peers import undici whole) shares one copy of each.
 */
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, buildConnector as undiciBuildConnector, Dispatcher } from 'undici';

const load = createRequire(import.meta.url);

/** undici's `Agent` (a pool of connections per origin). */
export const Agent = load('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;

/** undici's `buildConnector` (how a connection is opened, TLS options included). */
export const buildConnector = load('undici/lib/core/connect.js') as typeof undiciBuildConnector;

/** How a connection is opened: what `buildConnector` returns, and what an `Agent`'s `connect` may be. */
export type Connector = undiciBuildConnector.connector;

const requestOn = load('undici/lib/api/api-request.js') as (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

/** undici's `request(url, { dispatcher, ... })`: the URL split into origin and path as undici does. */
export function request(url: string, opts: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher }): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = opts;
  const u = new URL(url);
  return requestOn.call(dispatcher, { ...rest, origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname });
}
