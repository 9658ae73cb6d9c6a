import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultDataDir, DEFAULTS } from '../../shared/config.js';
import { dataDirLayout, ensurePrivateDir, writePrivateFile } from '../../shared/dataDir.js';
import { RaysubError } from '../../shared/errors.js';
import { EXIT } from '../exitCodes.js';
import { createClusterCerts } from '../x509.js';

export interface CertFlags {
  dir?: string;
  dataDir?: string;
  host?: string[];
  days?: string;
  force?: boolean;
}

const NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^[0-9.]+$|^[0-9a-fA-F:]+$/;

/** `raysub cert create`: a CA and a head certificate it signs, for a small cluster's HTTPS. */
export function certCreateCommand(flags: CertFlags): number {
  const dir = path.resolve(flags.dir ?? dataDirLayout(flags.dataDir ?? defaultDataDir()).tls);
  const days = Number(flags.days ?? DEFAULTS.certDays);
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new RaysubError('USAGE', `--days must be a whole number of days from 1 to 36500, got "${flags.days}"`);
  const extra = (flags.host ?? []).flatMap((h) => h.split(',')).map((h) => h.trim()).filter(Boolean);
  for (const h of extra) if (!NAME.test(h)) throw new RaysubError('USAGE', `--host: "${h}" is not a host name or IP address`);
  const hosts = [...new Set([...extra, os.hostname(), 'localhost', '127.0.0.1', '::1'])];
  const files = { ca: path.join(dir, 'ca.pem'), caKey: path.join(dir, 'ca-key.pem'), cert: path.join(dir, 'head.pem'), key: path.join(dir, 'head-key.pem') };
  const existing = Object.values(files).filter((f) => fs.existsSync(f));
  if (existing.length && !flags.force) throw new RaysubError('USAGE', `${existing.join(', ')} already exist(s); remove them or pass --force to replace them`);
  ensurePrivateDir(dir);
  const { ca, head } = createClusterCerts({ hosts, days, clusterName: os.hostname() });
  writePrivateFile(files.caKey, ca.key);
  writePrivateFile(files.key, head.key);
  // Certificates are public: clients need a copy of ca.pem.
  fs.writeFileSync(files.ca, ca.cert, { mode: 0o644 });
  fs.writeFileSync(files.cert, head.cert, { mode: 0o644 });
  process.stdout.write(
    [
      `Wrote a CA and a head certificate for ${hosts.join(', ')} (valid ${days} days) to ${dir}:`,
      `  ${files.ca}      the CA: give it to agents and clients (--ca or RAYSUB_CA)`,
      `  ${files.caKey}  the CA's private key: keep it safe, or delete it`,
      `  ${files.cert}    the head's certificate`,
      `  ${files.key}  the head's private key`,
      'Start the head with:',
      `  raysub start --head --host 0.0.0.0 --tls-cert ${files.cert} --tls-key ${files.key}`,
      'and point agents and clients at https://<host>:8265 with:',
      `  --ca ${files.ca}    (or RAYSUB_CA=${files.ca}; for Ray's clients: --verify ${files.ca})`,
      '',
    ].join('\n'),
  );
  return EXIT.OK;
}
