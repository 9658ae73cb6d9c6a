/**
 * What the in-job worker libraries must agree on with their agent, in one place: the agent's
 * messages (as JSON Schema, from their zod schemas), the in-job error names and what each library
 * raises for them, the job socket's error codes, and the sizes the libraries cut their batches
 * by. The Python and Node libraries hold generated copies (`npm run gen:contract` writes
 * src/worker/python/raysub/_contract.py and src/worker/node/contract.ts); a test fails when they
 * drift.
 */
import { z } from 'zod';
import { agentMessageSchema, socketErrorCodeSchema } from './injob.js';

/**
 * The errors the agent and the head make for in-job objects (an ErrorInfo's `type`), and the
 * exception each library raises for one. A task's own exception travels under its own name.
 */
export const injobErrors = {
  ActorDiedError: { doc: 'the actor is dead: killed, its worker died, or its constructor failed', python: 'ActorDiedError', node: 'ActorDiedError' },
  WorkerCrashedError: { doc: 'the worker running the task died and the task had no retries left', python: 'WorkerCrashedError', node: 'WorkerCrashedError' },
  ObjectLostError: { doc: 'the object could not be retrieved: its node is gone, the job ended, or it was not kept (the job was over a limit)', python: 'ObjectLostError', node: 'ObjectLostError' },
  UnschedulableError: { doc: 'no node can ever provide what the task asks for', python: 'TaskUnschedulableError', node: 'UnschedulableError' },
  AgentError: { doc: 'the agent could not run the task (an error inside raysub)', python: 'RaySystemError', node: 'RaysubError' },
  TaskCancelledError: { doc: 'the task was cancelled before it ran, or its worker was killed to cancel it', python: 'TaskCancelledError', node: 'TaskCancelledError' },
  ActorUnavailableError: { doc: 'the actor was restarting when the call ran: its process died and it has restarts left', python: 'ActorUnavailableError', node: 'ActorDiedError' },
  TaskPlacementGroupRemoved: { doc: 'the placement group the task or actor was to run in was removed', python: 'TaskPlacementGroupRemoved', node: 'RaysubError' },
} as const;
export type InjobErrorName = keyof typeof injobErrors;

const KiB = 1024;

/** Sizes both sides use. */
export const injobSizes = {
  /** Values up to this travel inline; larger ones stay in a node's object store and travel by location. */
  INLINE_LIMIT: 100 * KiB,
  /** The agent refuses a frame whose JSON header is larger. */
  MAX_HEADER_BYTES: 1024 * KiB,
  /** The libraries send a batch of submissions before its header passes this. */
  BATCH_HEADER_BYTES: 512 * KiB,
  /** ...and at most this many refs in one `get`. */
  GET_REFS_PER_FRAME: 5000,
} as const;

export function contract(): { agent_message: unknown; errors: Record<string, { python: string; node: string }>; socket_error_codes: readonly string[]; sizes: typeof injobSizes } {
  const { $schema: _drop, ...agentMessage } = z.toJSONSchema(agentMessageSchema) as Record<string, unknown>;
  void _drop;
  const errors = Object.fromEntries(Object.entries(injobErrors).map(([name, e]) => [name, { python: e.python, node: e.node }]));
  return { agent_message: agentMessage, errors, socket_error_codes: socketErrorCodeSchema.options, sizes: injobSizes };
}

const HEADER = 'Generated from src/shared/protocol/contract.ts by `npm run gen:contract`: do not edit.';

/** src/worker/python/raysub/_contract.py */
export function renderPythonContract(): string {
  const json = JSON.stringify(contract());
  return `"""The in-job contract with the agent. ${HEADER}"""\n\nimport json\n\nCONTRACT = json.loads(${JSON.stringify(json)})\nAGENT_MESSAGE = CONTRACT["agent_message"]\nERRORS = CONTRACT["errors"]\nSOCKET_ERROR_CODES = CONTRACT["socket_error_codes"]\nSIZES = CONTRACT["sizes"]\n`;
}

/** src/worker/node/contract.ts */
export function renderNodeContract(): string {
  const c = contract();
  return `/** The in-job contract with the agent. ${HEADER} */\nexport const AGENT_MESSAGE: unknown = ${JSON.stringify(c.agent_message)};\nexport const ERRORS: Record<string, { python: string; node: string }> = ${JSON.stringify(c.errors)};\nexport const SOCKET_ERROR_CODES: readonly string[] = ${JSON.stringify(c.socket_error_codes)};\nexport const SIZES = ${JSON.stringify(c.sizes)} as const;\n`;
}
