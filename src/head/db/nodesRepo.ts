import type { Db } from './open.js';
import type { NodeState } from '../../shared/protocol/index.js';

export interface NodeRow {
  id: string;
  name: string;
  hostname: string;
  state: NodeState;
  totals: string;
  sandbox: string;
  registered_at: number;
  last_seen_at: number;
  last_seq: number;
  usage: string;
  /** The credential that registered the node (a token id, 'local' or 'admin'); null: before credentials existed. */
  credential: string | null;
  /** An operator cordoned the node's name (1): it takes no new work, whichever registration holds it. */
  cordoned: number;
}

const ROW = "nodes.*, EXISTS (SELECT 1 FROM node_cordons c WHERE c.name = nodes.name) AS cordoned";

export function nodesRepo(db: Db) {
  const insert = db.prepare(`
    INSERT INTO nodes (id, name, hostname, state, totals, sandbox, registered_at, last_seen_at, credential)
    VALUES (@id, @name, @hostname, 'ALIVE', @totals, @sandbox, @registered_at, @registered_at, @credential)`);
  // The credential a name is bound to: that of its latest registration the head still knows.
  const nameBinding = db.prepare("SELECT id, credential FROM nodes WHERE name = ? AND state != 'GONE' ORDER BY registered_at DESC LIMIT 1");
  const credentialOf = db.prepare('SELECT credential FROM nodes WHERE id = ?');
  const get = db.prepare(`SELECT ${ROW} FROM nodes WHERE id = ?`);
  const all = db.prepare(`SELECT ${ROW} FROM nodes WHERE state != 'GONE' ORDER BY name, registered_at`);
  const alive = db.prepare(`SELECT ${ROW} FROM nodes WHERE state IN ('ALIVE', 'DRAINING')`);
  const cordon = db.prepare('INSERT INTO node_cordons (name, since) VALUES (?, ?) ON CONFLICT (name) DO NOTHING');
  const uncordon = db.prepare('DELETE FROM node_cordons WHERE name = ?');
  const known = db.prepare("SELECT 1 FROM nodes WHERE name = ? AND state != 'GONE' LIMIT 1");
  const forgetName = db.prepare("UPDATE nodes SET state = 'GONE' WHERE name = ? AND state = 'LOST'");
  const setState = db.prepare('UPDATE nodes SET state = ? WHERE id = ?');
  const lastSeq = db.prepare('SELECT last_seq FROM nodes WHERE id = ?');
  const setSeq = db.prepare('UPDATE nodes SET last_seq = ? WHERE id = ?');
  const touch = db.prepare('UPDATE nodes SET last_seen_at = ?, usage = COALESCE(?, usage) WHERE id = ?');
  // Lost nodes are kept for a while so `raysub nodes` can show them, then forgotten.
  const forgetLost = db.prepare("UPDATE nodes SET state = 'GONE' WHERE state = 'LOST' AND last_seen_at < ?");

  return {
    insert: (n: { id: string; name: string; hostname: string; totals: string; sandbox: string; registered_at: number; credential: string | null }) => insert.run(n),
    nameBinding: (name: string) => nameBinding.get(name) as { id: string; credential: string | null } | undefined,
    credentialOf: (id: string) => (credentialOf.get(id) as { credential: string | null } | undefined)?.credential,
    get: (id: string) => get.get(id) as NodeRow | undefined,
    all: () => all.all() as NodeRow[],
    alive: () => alive.all() as NodeRow[],
    setState: (id: string, state: NodeState) => setState.run(state, id),
    /** The last report sequence number applied for the node (0 for an unknown node). */
    lastSeq: (id: string) => (lastSeq.get(id) as { last_seq: number } | undefined)?.last_seq ?? 0,
    setSeq: (id: string, seq: number) => setSeq.run(seq, id),
    touch: (id: string, at: number, usage: string | null) => touch.run(at, usage, id),
    forgetLost: (before: number) => forgetLost.run(before),
    /** Whether the head knows a node by this name (alive or lost). */
    known: (name: string) => known.get(name) !== undefined,
    cordon: (name: string, at: number) => cordon.run(name, at),
    uncordon: (name: string) => uncordon.run(name).changes > 0,
    /** Forget the lost registrations of a name; returns how many. */
    forgetName: (name: string) => forgetName.run(name).changes,
  };
}

export type NodesRepo = ReturnType<typeof nodesRepo>;
