import type { CliContext } from '../context.js';
import { EXIT } from '../exitCodes.js';

/**
 * `raysub dashboard [--url] [--json]`: a one-time login link for the web dashboard, made by the
 * head for this command's token. It works once, for two minutes; the browser then holds a session.
 */
export async function dashboardCommand(ctx: CliContext, flags: { url?: boolean; json?: boolean }): Promise<number> {
  const made = await ctx.client.createLoginCode();
  const url = `${ctx.address}${made.path}`;
  if (flags.json) {
    ctx.out.write(JSON.stringify({ url, expires_at: made.expires_at }) + '\n');
    return EXIT.OK;
  }
  if (!flags.url) {
    const seconds = Math.max(0, Math.round((made.expires_at - Date.now()) / 1000));
    ctx.err.write(`Open this link in a browser within ${seconds} s to log in to the dashboard (it works once; keep it to yourself):\n`);
  }
  ctx.out.write(url + '\n');
  return EXIT.OK;
}
