/**
 * One home for the in-job contract: the worker libraries' generated copies match
 * src/shared/protocol/contract.ts, each library raises the exception the table names for each
 * in-job error name, and the agent's zod schema and both libraries' checks agree on what a valid
 * agent message is.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentMessageSchema, injobErrors, renderNodeContract, renderPythonContract } from '../src/shared/protocol/index.js';
import { errorOf } from '../src/worker/node/index.js';
import { AGENT_MESSAGE } from '../src/worker/node/contract.js';
import { mismatch } from '../src/worker/node/schema.js';
import { repoRoot } from './helpers/cluster.js';

const PYTHON_LIB = path.join(repoRoot, 'src', 'worker', 'python');

function python(script: string, input: unknown): unknown {
  const out = execFileSync('python3', ['-c', script], { input: JSON.stringify(input), env: { ...process.env, PYTHONPATH: PYTHON_LIB }, encoding: 'utf8' });
  return JSON.parse(out) as unknown;
}

const item = { id: 'a1b2', state: 'value', len: 3 };
const task = { id: 't1', kind: 'task', fn: { module: 'm', name: 'f' }, name: 'f', args_len: 0, deps: [{ id: 'd1', state: 'path', len: 0, path: '/x' }], gpu_ids: [], attempt: 1 };
const cases: [string, unknown][] = [
  ['welcome', { t: 'welcome', node_id: 'node_0123abcd', job_id: 'raysubmit_x' }],
  ['welcome before registration', { t: 'welcome', node_id: '', job_id: 'j' }],
  ['error', { t: 'error', code: 'LIMIT_EXCEEDED', message: 'why' }],
  ['resolved', { t: 'resolved', items: [item, { id: 'e1', state: 'error', len: 0, error: { type: 'ActorDiedError', message: 'm', traceback: '', task: 'f' } }] }],
  ['execute', { t: 'execute', task }],
  ['execute with args by path', { t: 'execute', task: { ...task, args_path: '/w/objects/args-1' } }],
  ['unknown type', { t: 'explode' }],
  ['error with an unknown code', { t: 'error', code: 'NOPE', message: 'm' }],
  ['resolved item with a path id', { t: 'resolved', items: [{ ...item, id: '../x' }] }],
  ['resolved item without len', { t: 'resolved', items: [{ id: 'a', state: 'value' }] }],
  ['negative len', { t: 'resolved', items: [{ ...item, len: -1 }] }],
  ['fractional attempt', { t: 'execute', task: { ...task, attempt: 1.5 } }],
  ['execute without deps', { t: 'execute', task: { ...task, deps: undefined } }],
  ['not an object', [1, 2]],
];

describe('the in-job contract', () => {
  it("the libraries' generated copies are the contract's (else: npm run gen:contract)", () => {
    expect(fs.readFileSync(path.join(PYTHON_LIB, 'raysub', '_contract.py'), 'utf8')).toBe(renderPythonContract());
    expect(fs.readFileSync(path.join(repoRoot, 'src', 'worker', 'node', 'contract.ts'), 'utf8')).toBe(renderNodeContract());
  });

  it('each library raises, for each in-job error name, the exception the table names', () => {
    const names = Object.keys(injobErrors);
    const got = python(
      `import json, sys
from raysub import _failure
out = {}
for name in json.load(sys.stdin):
    out[name] = type(_failure.error_of({"type": name, "message": "m", "traceback": "", "task": "f"}, b"")).__name__
print(json.dumps(out))`,
      names,
    ) as Record<string, string>;
    for (const [name, e] of Object.entries(injobErrors)) {
      expect(got[name], `python, ${name}`).toBe(e.python);
      expect(errorOf({ type: name, message: 'm', traceback: '', task: 'f' }).name, `node, ${name}`).toBe(e.node);
    }
    // A task's own exception is not a system error.
    expect(errorOf({ type: 'KeyError', message: 'k', traceback: 'tb', task: 'f' }).name).toBe('TaskError');
  });

  it("the agent's schema and both libraries' checks agree on every message", () => {
    const py = python(
      `import json, sys
from raysub import _schema
from raysub._contract import AGENT_MESSAGE
out = []
for msg in json.load(sys.stdin):
    try:
        _schema.check(AGENT_MESSAGE, msg)
        out.append(True)
    except _schema.SchemaError:
        out.append(False)
print(json.dumps(out))`,
      cases.map(([, m]) => m),
    ) as boolean[];
    cases.forEach(([what, msg], i) => {
      const zod = agentMessageSchema.safeParse(msg).success;
      expect(mismatch(AGENT_MESSAGE, msg) === null, `node, ${what}`).toBe(zod);
      expect(py[i], `python, ${what}`).toBe(zod);
    });
    expect(cases.filter(([, m]) => agentMessageSchema.safeParse(m).success)).toHaveLength(6);
  });
});
