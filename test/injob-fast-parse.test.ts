/**
 * The job socket's hand-written checks for its frequent messages (submit, result, get, release)
 * against the zod schema that is the contract: fed the same headers, as the agent reads them (JSON
 * text, so `__proto__` keys are the peer's own), the hand-written checks accept only what the
 * schema accepts and give exactly what it gives; everything else is the schema's to refuse, with
 * its own message. The frequent shapes must take the hand-written path (else it saves nothing).
 */
import { describe, expect, it } from 'vitest';
import { clientMessageSchema, fastClientMessage, parseClientMessage } from '../src/shared/protocol/index.js';

const res = { cpus: 1, gpus: 0, memory: 0, custom: {} };
const spec = { id: 'a1b2c3d4e5f6_1', kind: 'task', fn: { module: '__raysub_fn__', name: 'a1b2c3d4e5f6_0' }, name: 'nothing', resources: res, max_retries: 3, retry_exceptions: false, deps: [{ id: 'a1b2c3d4e5f6_0', owner: 'node_0123abcd' }], args_len: 42 };
const huge = 'x'.repeat(300_000);
const with_ = (o: Record<string, unknown>, k: string, v: unknown): Record<string, unknown> => ({ ...o, [k]: v });
const without = (o: Record<string, unknown>, k: string): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k));
const submit = (...tasks: unknown[]): unknown => ({ t: 'submit', tasks });

/** [name, header as JSON text, whether the hand-written path must take it] */
const cases: [string, string, boolean][] = [
  // The frequent shapes: taken by the hand-written checks.
  ['submit of one task', JSON.stringify(submit(spec)), true],
  ['submit of several tasks', JSON.stringify(submit(spec, { ...spec, id: 'b2', deps: [] }, { ...spec, id: 'c3', fn: { module: 'm', name: 'f', main_file: 'main.py' } })), true],
  ['submit with main_file null', JSON.stringify(submit({ ...spec, fn: { module: 'm', name: 'f', main_file: null } })), true],
  ['submit of an actor call', JSON.stringify(submit({ ...spec, kind: 'actor_call', actor_id: 'act_1', method: 'inc', max_retries: -1 })), true],
  ['submit of an actor creation', JSON.stringify(submit({ ...spec, kind: 'actor_create', actor_id: 'act_1', max_concurrency: 4, max_restarts: -1, resources: { ...res, cpus: 0, memory: 1024 } })), true],
  ['submit with fractional CPUs and an owner not known yet', JSON.stringify(submit({ ...spec, resources: { ...res, cpus: 0.25 }, deps: [{ id: 'x', owner: '' }] })), true],
  ['submit of nothing', JSON.stringify(submit()), true],
  ['submit with unknown keys (stripped)', JSON.stringify({ ...(submit(with_(spec, 'extra', huge)) as object), more: 1 }), true],
  ['submit with __proto__ keys (stripped)', `{"t":"submit","__proto__":{"polluted":1},"tasks":[${JSON.stringify(spec).slice(0, -1)},"__proto__":{"polluted":2}}]}`, true],
  ['result', '{"t":"result","task_id":"a1_1","ok":true,"len":5}', true],
  ['result in a file, not retryable', '{"t":"result","task_id":"a1_1","ok":true,"len":5,"file":true,"retryable":false}', true],
  ['result with __proto__', '{"t":"result","task_id":"a1_1","ok":true,"len":5,"__proto__":{"ok":false}}', true],
  ['get', '{"t":"get","refs":[{"id":"a1","owner":"node_1"},{"id":"a2","owner":""}]}', true],
  ['get of nothing', '{"t":"get","refs":[]}', true],
  ['release', '{"t":"release","objects":["a1","a2"],"actors":[]}', true],
  ['release with __proto__ in a ref list', '{"t":"release","objects":["a1"],"actors":[],"__proto__":[]}', true],
  // Rarer shapes the schema checks itself (valid).
  ['submit with num_returns', JSON.stringify(submit({ ...spec, num_returns: 3 })), false],
  ['submit with placement', JSON.stringify(submit({ ...spec, placement: { node: 'node_1', soft: true } })), false],
  ['submit with custom resources', JSON.stringify(submit({ ...spec, resources: { ...res, custom: { accel: 1 } } })), false],
  ['submit with custom __proto__ resource', `{"t":"submit","tasks":[${JSON.stringify({ ...spec, resources: { ...res, custom: {} } }).replace('"custom":{}', '"custom":{"__proto__":1}')}]}`, false],
  ['failed result', JSON.stringify({ t: 'result', task_id: 'a1', ok: false, len: 0, error: { type: 'ValueError', message: 'm', traceback: 't', task: 'f' } }), false],
  ['result of several returns', '{"t":"result","task_id":"a1","ok":true,"len":3,"returns":[1,2]}', false],
  ['hello', '{"t":"hello","token":"x","role":"driver","lang":"python"}', false],
  ['put', '{"t":"put","id":"a1","len":3}', false],
  // Invalid: the schema refuses them, with its message.
  ['not an object', '[1,2]', false],
  ['null', 'null', false],
  ['a string', '"submit"', false],
  ['no type', '{"tasks":[]}', false],
  ['unknown type', '{"t":"explode"}', false],
  ['tasks not an array', '{"t":"submit","tasks":{}}', false],
  ['task without id', JSON.stringify(submit(without(spec, 'id'))), false],
  ['task id with a path', JSON.stringify(submit({ ...spec, id: '../etc' })), false],
  ['task id too long', JSON.stringify(submit({ ...spec, id: 'a'.repeat(65) })), false],
  ['task id empty', JSON.stringify(submit({ ...spec, id: '' })), false],
  ['task id a number', JSON.stringify(submit({ ...spec, id: 12 })), false],
  ['unknown kind', JSON.stringify(submit({ ...spec, kind: 'job' })), false],
  ['kind from the prototype', JSON.stringify(submit({ ...spec, kind: 'constructor' })), false],
  ['name too long', JSON.stringify(submit({ ...spec, name: 'n'.repeat(257) })), false],
  ['huge module name', JSON.stringify(submit({ ...spec, fn: { module: huge, name: 'f' } })), false],
  ['huge main_file', JSON.stringify(submit({ ...spec, fn: { module: 'm', name: 'f', main_file: huge } })), false],
  ['fn an array', JSON.stringify(submit({ ...spec, fn: ['m', 'f'] })), false],
  ['fn null', JSON.stringify(submit({ ...spec, fn: null })), false],
  ['fn.main_file a number', JSON.stringify(submit({ ...spec, fn: { module: 'm', name: 'f', main_file: 3 } })), false],
  ['negative CPUs', JSON.stringify(submit({ ...spec, resources: { ...res, cpus: -1 } })), false],
  ['CPUs past the bound', JSON.stringify(submit({ ...spec, resources: { ...res, cpus: 100_001 } })), false],
  ['CPUs as a string', JSON.stringify(submit({ ...spec, resources: { ...res, cpus: '1' } })), false],
  ['GPUs past the bound', JSON.stringify(submit({ ...spec, resources: { ...res, gpus: 1025 } })), false],
  ['fractional memory', JSON.stringify(submit({ ...spec, resources: { ...res, memory: 1.5 } })), false],
  ['memory past a safe integer', '{"t":"submit","tasks":[' + JSON.stringify(spec).replace('"memory":0', '"memory":1e300') + ']}', false],
  ['custom an array', JSON.stringify(submit({ ...spec, resources: { ...res, custom: [] } })), false],
  ['custom missing', JSON.stringify(submit({ ...spec, resources: without(res, 'custom') })), false],
  ['max_retries below -1', JSON.stringify(submit({ ...spec, max_retries: -2 })), false],
  ['max_retries past 1000', JSON.stringify(submit({ ...spec, max_retries: 1001 })), false],
  ['max_retries fractional', JSON.stringify(submit({ ...spec, max_retries: 1.5 })), false],
  ['retry_exceptions a number', JSON.stringify(submit({ ...spec, retry_exceptions: 0 })), false],
  ['args_len negative', JSON.stringify(submit({ ...spec, args_len: -1 })), false],
  ['args_len missing', JSON.stringify(submit(without(spec, 'args_len'))), false],
  ['deps not an array', JSON.stringify(submit({ ...spec, deps: 'a1' })), false],
  ['dep without owner', JSON.stringify(submit({ ...spec, deps: [{ id: 'a1' }] })), false],
  ['dep owner with a slash', JSON.stringify(submit({ ...spec, deps: [{ id: 'a1', owner: 'node/1' }] })), false],
  ['too many deps', JSON.stringify(submit({ ...spec, deps: Array.from({ length: 10_001 }, (_, i) => ({ id: `d${i}`, owner: '' })) })), false],
  ['actor_id with a path', JSON.stringify(submit({ ...spec, actor_id: '../a' })), false],
  ['method too long', JSON.stringify(submit({ ...spec, method: 'm'.repeat(257) })), false],
  ['max_concurrency 0', JSON.stringify(submit({ ...spec, max_concurrency: 0 })), false],
  ['max_restarts -2', JSON.stringify(submit({ ...spec, max_restarts: -2 })), false],
  ['num_returns on a long id', JSON.stringify(submit({ ...spec, id: 'a'.repeat(60), num_returns: 2 })), false],
  ['a task null', JSON.stringify(submit(null)), false],
  ['a good task then a bad one', JSON.stringify(submit(spec, { ...spec, id: '' })), false],
  ['result without len', '{"t":"result","task_id":"a1","ok":true}', false],
  ['result ok a string', '{"t":"result","task_id":"a1","ok":"yes","len":1}', false],
  ['result len fractional', '{"t":"result","task_id":"a1","ok":true,"len":0.5}', false],
  ['result file false', '{"t":"result","task_id":"a1","ok":true,"len":1,"file":false}', false],
  ['result retryable a string', '{"t":"result","task_id":"a1","ok":true,"len":1,"retryable":"no"}', false],
  ['result with a huge error', JSON.stringify({ t: 'result', task_id: 'a1', ok: false, len: 0, error: { type: 'E', message: huge, traceback: '', task: 'f' } }), false],
  ['result error null', '{"t":"result","task_id":"a1","ok":false,"len":0,"error":null}', false],
  ['result task id with a path', '{"t":"result","task_id":"../x","ok":true,"len":1}', false],
  ['get refs not an array', '{"t":"get","refs":"a1"}', false],
  ['get ref a string', '{"t":"get","refs":["a1"]}', false],
  ['get ref with a bad id', '{"t":"get","refs":[{"id":"a b","owner":""}]}', false],
  ['get ref owner null', '{"t":"get","refs":[{"id":"a1","owner":null}]}', false],
  ['get of too many refs', JSON.stringify({ t: 'get', refs: Array.from({ length: 100_001 }, () => ({ id: 'a', owner: '' })) }), false],
  ['release without actors', '{"t":"release","objects":["a1"]}', false],
  ['release of a number', '{"t":"release","objects":[1],"actors":[]}', false],
  ['release of a huge id', JSON.stringify({ t: 'release', objects: [huge], actors: [] }), false],
  ['release actors an object', '{"t":"release","objects":[],"actors":{"0":"a"}}', false],
];

describe('the job socket\'s hand-written checks against the schema', () => {
  it.each(cases)('%s', (_name, text, hot) => {
    const header: unknown = JSON.parse(text);
    const schema = clientMessageSchema.safeParse(header);
    const fast = fastClientMessage(header);
    const parsed = parseClientMessage(header);
    if (hot) expect(fast, 'the frequent shape takes the hand-written path').not.toBeNull();
    // Taken by hand only when the schema takes it too, with the very same result.
    if (fast !== null) {
      expect(schema.success).toBe(true);
      expect(fast).toStrictEqual(schema.data);
    }
    // What the agent uses agrees with the schema either way: the same message, or the same error.
    expect(parsed.success).toBe(schema.success);
    if (schema.success) expect(parsed.data).toStrictEqual(schema.data);
    else expect(parsed.error?.issues).toStrictEqual(schema.error.issues);
    // Nothing a header says reaches the objects' prototype.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('the valid cases are valid and the invalid ones invalid (the table means what it says)', () => {
    const valid = cases.filter(([, text]) => clientMessageSchema.safeParse(JSON.parse(text)).success).map(([n]) => n);
    expect(valid.length).toBe(24);
    expect(valid).toContain('submit with __proto__ keys (stripped)');
    expect(valid).not.toContain('a good task then a bad one');
  });
});
