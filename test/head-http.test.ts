/**
 * HTTP statuses and error codes, through the server's inject on an in-process head (real SQLite
 * file, no sockets): each case is one request and the answer it must get.
 */
import { describe, expect, it } from 'vitest';
import { call, inProcessHead, registration } from './helpers/head.js';

describe('HTTP answers with stable codes', () => {
  it('maps each client mistake to its status and code, and keeps serving', async () => {
    const head = await inProcessHead();
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'taken', entrypoint_num_cpus: 1 })).status).toBe(200);
    const cases: [method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body: unknown, status: number, code: string, token?: string | null][] = [
      ['GET', '/api/jobs/', undefined, 401, 'UNAUTHORIZED', null],
      ['GET', '/api/jobs/', undefined, 403, 'INVALID_TOKEN', 'wrong-token'],
      ['GET', '/api/jobs/nope', undefined, 404, 'JOB_NOT_FOUND'],
      ['POST', '/api/jobs/nope/stop', undefined, 404, 'JOB_NOT_FOUND'],
      ['DELETE', '/api/jobs/nope', undefined, 404, 'JOB_NOT_FOUND'],
      ['DELETE', '/api/jobs/taken', undefined, 409, 'JOB_NOT_TERMINAL'],
      ['POST', '/api/jobs/', '{"entrypoint": ', 400, 'INVALID_JSON'],
      ['POST', '/api/jobs/', { runtime_env: {} }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/jobs/', { entrypoint: 'true', surprise: 1 }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/jobs/', { entrypoint: 'true', runtime_env: { conda: 'x' } }, 400, 'INVALID_RUNTIME_ENV'],
      ['POST', '/api/jobs/', { entrypoint: 'true', runtime_env: { working_dir: 'gcs://_ray_pkg_missing.zip' } }, 400, 'INVALID_RUNTIME_ENV'],
      ['POST', '/api/jobs/', { entrypoint: 'true', entrypoint_num_gpus: 1.5 }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/jobs/', { entrypoint: 'false', submission_id: 'taken' }, 409, 'JOB_ALREADY_EXISTS'],
      ['GET', '/api/jobs/?cursor=!!', undefined, 400, 'INVALID_CURSOR'],
      ['GET', '/api/jobs/?cursor=YWJj', undefined, 400, 'INVALID_CURSOR'],
      ['GET', '/api/schedules/nope', undefined, 404, 'SCHEDULE_NOT_FOUND'],
      ['DELETE', '/api/schedules/nope', undefined, 404, 'SCHEDULE_NOT_FOUND'],
      ['POST', '/api/schedules/nope/pause', undefined, 404, 'SCHEDULE_NOT_FOUND'],
      ['POST', '/api/schedules', { name: 'bad', cron: 'not cron', job: { entrypoint: 'true' } }, 400, 'INVALID_SCHEDULE'],
      ['POST', '/api/agents/no-such-node/report', { events: [], logs: [], running: [] }, 410, 'NODE_LOST'],
      ['POST', '/api/agents/no-such-node/poll', { known: [], wait_ms: 0 }, 410, 'NODE_LOST'],
      ['POST', '/api/agents/register', { node_name: '' }, 400, 'INVALID_REQUEST'],
      ['GET', '/api/no-such-route', undefined, 404, 'NOT_FOUND'],
    ];
    for (const [method, url, body, status, code, token] of cases) {
      const res = await call(head, method, url, body, token === undefined ? head.token : token);
      expect({ method, url, status: res.status, code: res.json.error?.code }).toEqual({ method, url, status, code });
    }
    expect((await call(head, 'GET', '/api/version')).status).toBe(200);
  });

  it('a transaction refused for a client mistake leaves live state as it was: no reload, no lease renewed', async () => {
    const head = await inProcessHead();
    const reg = await call(head, 'POST', '/api/agents/register', registration('n1'));
    const nodeId = String(reg.json.node_id);
    const before = head.engine.view.node(nodeId);
    expect(before).toBeDefined();
    const lease = before?.leaseUntil;
    for (let i = 0; i < 5; i++) {
      expect((await call(head, 'DELETE', '/api/schedules/nope')).status).toBe(404);
      expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'false', submission_id: 'x', entrypoint_num_cpus: i })).status).toBe(i === 0 ? 200 : 409);
    }
    // The same node object (a reload builds new ones) with the same lease.
    expect(head.engine.view.node(nodeId)).toBe(before);
    expect(head.engine.view.node(nodeId)?.leaseUntil).toBe(lease);
  });
});
