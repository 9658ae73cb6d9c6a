import fs from 'node:fs';
import path from 'node:path';
import { writePrivateFile } from '../../shared/dataDir.js';
import { RaysubError } from '../../shared/errors.js';
import { formatAge, renderTable } from '../../ui/table.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';

/** `raysub token create --kind user|agent [--name N] [--output FILE]`: the token goes to stdout or a 0600 file, once. */
export async function tokenCreateCommand(ctx: CliContext, flags: { kind?: string; name?: string; output?: string; json?: boolean }): Promise<number> {
  if (flags.kind !== 'user' && flags.kind !== 'agent') throw new RaysubError('USAGE', '--kind must be user or agent');
  const output = flags.output ? path.resolve(flags.output) : undefined;
  if (output && fs.existsSync(output)) throw new RaysubError('USAGE', `${output} exists already; choose another --output`);
  const created = await ctx.client.createToken({ kind: flags.kind, ...(flags.name ? { name: flags.name } : {}) });
  if (output) writePrivateFile(output, created.token + '\n');
  if (flags.json) {
    ctx.out.write(JSON.stringify(output ? { ...created, token: undefined, file: output } : created) + '\n');
    return EXIT.OK;
  }
  const use = created.kind === 'agent' ? `raysub start --address ${ctx.address} --token-file FILE` : 'RAYSUB_TOKEN_FILE=FILE raysub job submit ...';
  ctx.err.write(`Created ${created.kind} token ${created.name} (${created.id}). It is shown only now: keep it in a file readable by its owner alone (chmod 600), and use it as: ${use}\n`);
  if (output) ctx.err.write(`Wrote it to ${output} (mode 0600).\n`);
  else ctx.out.write(created.token + '\n');
  return EXIT.OK;
}

export async function tokenListCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const tokens = await ctx.client.listTokens();
  if (flags.json) {
    ctx.out.write(JSON.stringify({ tokens }, null, 2) + '\n');
    return EXIT.OK;
  }
  const now = Date.now();
  const rows = tokens.map((t) => [t.id, t.kind, t.name, formatAge(now - t.created_at), t.revoked_at === null ? 'active' : `revoked ${formatAge(now - t.revoked_at)}`]);
  ctx.out.write(renderTable(['ID', 'KIND', 'NAME', 'AGE', 'STATE'], rows) + '\n');
  return EXIT.OK;
}

export async function tokenRevokeCommand(ctx: CliContext, idOrName: string, flags: { json?: boolean }): Promise<number> {
  const t = await ctx.client.revokeToken(idOrName);
  if (flags.json) ctx.out.write(JSON.stringify(t) + '\n');
  else ctx.err.write(`Revoked ${t.kind} token ${t.name} (${t.id}).\n`);
  return EXIT.OK;
}
