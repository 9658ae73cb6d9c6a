/**
 * Node identity: which credential may register a node name, and act for a node. A name is bound
 * to the credential that registered it last (while the head remembers the node); a name a live
 * node holds goes to no one else — only the same agent restarting (same credential, presenting
 * its previous node id) replaces its old registration. Registrations are rate-limited per name
 * and per credential, so two agents can never take a name from each other in a loop.
 */
import { RaysubError } from '../shared/errors.js';
import type { RegisterRequest } from '../shared/protocol/index.js';
import type { Authenticator, Principal } from './auth.js';
import type { Store } from './db/index.js';
import type { NodeView } from './state.js';

type AgentPrincipal = Extract<Principal, { kind: 'agent' }>;

/** A token bucket per key: `burst` at once, then one every `everyMs`. */
class Buckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly everyMs: number,
  ) {}

  /** Take one; returns the milliseconds to wait when the bucket is empty, else 0. */
  take(key: string, now: number): number {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    const tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.everyMs);
    if (tokens < 1) return Math.ceil((1 - tokens) * this.everyMs);
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.buckets.size > 10_000) this.prune(now);
    return 0;
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) / this.everyMs >= this.burst) this.buckets.delete(k);
  }
}

/** Node ids whose credential check() keeps in memory. */
const CREDENTIALS_KEPT = 4096;

export class NodeIdentity {
  private readonly perName = new Buckets(5, 2000);
  private readonly perCredential = new Buckets(30, 1000);
  /** Node id -> the credential that registered it (credentialOf), the newest CREDENTIALS_KEPT. */
  private readonly credentials = new Map<string, string | null>();

  constructor(
    private readonly store: Pick<Store, 'nodes'>,
    private readonly auth: Pick<Authenticator, 'credentialValid'>,
  ) {}

  /**
   * May `agent` register `req` now? Returns the live nodes the registration replaces (its own
   * earlier registration), or throws NODE_NAME_TAKEN (409) or TOO_MANY_REQUESTS (429).
   */
  admit(req: RegisterRequest, agent: AgentPrincipal, live: readonly NodeView[], now: number): string[] {
    const name = req.node_name;
    const wait = this.perName.take(`name:${name}`, now) || this.perCredential.take(`cred:${agent.credential}`, now);
    if (wait > 0) {
      throw new RaysubError('TOO_MANY_REQUESTS', `node ${name} registered too often; try again in ${Math.ceil(wait / 1000)}s`, { retryable: true });
    }
    const holder = live.find((n) => n.name === name);
    if (holder && holder.id !== req.previous_node_id) {
      throw new RaysubError('NODE_NAME_TAKEN', `node name "${name}" is held by a live agent (node ${holder.id}); start this agent with another --node-name, or stop the other one first`);
    }
    const bound = this.store.nodes.nameBinding(name);
    if (bound && bound.credential !== agent.credential && this.auth.credentialValid(bound.credential)) {
      throw new RaysubError('NODE_NAME_TAKEN', `node name "${name}" belongs to another agent credential; start this agent with another --node-name`);
    }
    // The agent's own earlier registration (by name, or under another name it had).
    const previous = req.previous_node_id ? live.find((n) => n.id === req.previous_node_id) : undefined;
    if (previous && this.store.nodes.credentialOf(previous.id) !== agent.credential) {
      throw new RaysubError('FORBIDDEN', `node ${previous.id} was registered with another credential`);
    }
    // Its own earlier registration, already declared lost: superseded too (a node that is back is not LOST).
    const earlier = req.previous_node_id && !previous && this.store.nodes.credentialOf(req.previous_node_id) === agent.credential ? req.previous_node_id : undefined;
    return [...new Set([holder?.id, previous?.id, earlier].filter((id): id is string => id !== undefined))];
  }

  /** May `agent` act for node `nodeId` (poll, report, drain, leave)? */
  check(nodeId: string, agent: AgentPrincipal): void {
    const credential = this.credentialOf(nodeId);
    if (credential === undefined) return; // unknown node: the endpoint answers NODE_LOST
    if (credential !== agent.credential) throw new RaysubError('FORBIDDEN', `node ${nodeId} was registered with another credential`);
  }

  /**
   * The credential that registered a node id, read from SQLite once per id: it is written with the
   * node's row and never changed (a registration again is a new id; rows are marked GONE, never
   * deleted), and every agent request asks. An id not known yet is not remembered.
   */
  private credentialOf(nodeId: string): string | null | undefined {
    if (this.credentials.has(nodeId)) return this.credentials.get(nodeId);
    const credential = this.store.nodes.credentialOf(nodeId);
    if (credential === undefined) return undefined;
    if (this.credentials.size >= CREDENTIALS_KEPT) this.credentials.delete(this.credentials.keys().next().value ?? nodeId);
    this.credentials.set(nodeId, credential);
    return credential;
  }
}
