import type { Db } from './open.js';

/** A dashboard session: the browser holds its id in a cookie, the head only the id's SHA-256. */
export interface SessionRow {
  id_hash: string;
  kind: 'admin' | 'user';
  /** The user token's id, or a fingerprint of the admin token the session was opened with. */
  credential: string;
  name: string;
  /** The token the page sends back with every state-changing request. */
  csrf: string;
  created_at: number;
  expires_at: number;
  last_seen_at: number;
}

export function sessionsRepo(db: Db) {
  const insert = db.prepare(`
    INSERT INTO sessions (id_hash, kind, credential, name, csrf, created_at, expires_at, last_seen_at)
    VALUES (@id_hash, @kind, @credential, @name, @csrf, @created_at, @expires_at, @last_seen_at)`);
  const get = db.prepare('SELECT * FROM sessions WHERE id_hash = ?');
  const touch = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?');
  const remove = db.prepare('DELETE FROM sessions WHERE id_hash = ?');
  const removeExpired = db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?');
  const count = db.prepare('SELECT COUNT(*) AS n FROM sessions');
  const countOf = db.prepare('SELECT COUNT(*) AS n FROM sessions WHERE credential = ?');
  // The credential's least recently used sessions beyond `keep`.
  const trimOf = db.prepare(`
    DELETE FROM sessions WHERE id_hash IN (
      SELECT id_hash FROM sessions WHERE credential = ? ORDER BY last_seen_at DESC LIMIT -1 OFFSET ?)`);
  const trimAll = db.prepare(`
    DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions ORDER BY last_seen_at DESC LIMIT -1 OFFSET ?)`);
  const removeOf = db.prepare('DELETE FROM sessions WHERE credential = ?');
  return {
    insert: (s: SessionRow) => insert.run(s),
    get: (idHash: string) => get.get(idHash) as SessionRow | undefined,
    touch: (idHash: string, at: number) => touch.run(at, idHash),
    remove: (idHash: string) => remove.run(idHash).changes > 0,
    /** Sessions past their lifetime, or idle since `idleBefore`. */
    removeExpired: (now: number, idleBefore: number) => removeExpired.run(now, idleBefore).changes,
    count: () => (count.get() as { n: number }).n,
    countOf: (credential: string) => (countOf.get(credential) as { n: number }).n,
    /** Keep a credential's `keep` most recently used sessions, and at most `keepAll` in all. */
    trim(credential: string, keep: number, keepAll: number): void {
      trimOf.run(credential, keep);
      trimAll.run(keepAll);
    },
    /** End every session opened with a credential (its token was revoked). */
    removeOf: (credential: string) => removeOf.run(credential).changes,
  };
}
