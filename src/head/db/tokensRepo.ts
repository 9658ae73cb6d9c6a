import type { Db } from './open.js';

export type TokenKind = 'user' | 'agent';

export interface TokenRow {
  id: string;
  kind: TokenKind;
  name: string;
  /** SHA-256 of the token, hex: the token itself is never stored. */
  hash: string;
  created_at: number;
  revoked_at: number | null;
}

export function tokensRepo(db: Db) {
  const insert = db.prepare('INSERT INTO tokens (id, kind, name, hash, created_at) VALUES (@id, @kind, @name, @hash, @created_at)');
  const all = db.prepare('SELECT * FROM tokens ORDER BY created_at, id');
  const find = db.prepare('SELECT * FROM tokens WHERE id = ? OR name = ?');
  const revoke = db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  return {
    insert: (t: Omit<TokenRow, 'revoked_at'>) => insert.run(t),
    all: () => all.all() as TokenRow[],
    find: (idOrName: string) => find.get(idOrName, idOrName) as TokenRow | undefined,
    revoke: (id: string, at: number) => revoke.run(at, id).changes > 0,
  };
}
