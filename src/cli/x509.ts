/**
 * Just enough X.509 to make a small cluster's certificates without openssl: a self-signed CA and a
 * head certificate it signs (ECDSA P-256, SHA-256), with the extensions strict verifiers
 * (Python's VERIFY_X509_STRICT, browsers) ask for. DER is written by hand; Node signs.
 */
import crypto from 'node:crypto';
import net from 'node:net';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Buffer[]): Buffer => tlv(0x31, ...parts);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.from([unused]), b);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 + n, inner);

function integer(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0 && (v[1] ?? 0) < 0x80) v = v.subarray(1);
  if ((v[0] ?? 0) >= 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  // UTCTime until 2049, GeneralizedTime after (RFC 5280).
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const name = (cn: string): Buffer => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
const ext = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function keyId(key: crypto.KeyObject): Buffer {
  return crypto.createHash('sha1').update(key.export({ type: 'spki', format: 'der' })).digest();
}

function altNames(hosts: readonly string[]): Buffer {
  return seq(
    ...hosts.map((h) => {
      if (net.isIPv4(h)) return tlv(0x87, Buffer.from(h.split('.').map(Number)));
      if (net.isIPv6(h)) return tlv(0x87, ipv6Bytes(h));
      return tlv(0x82, Buffer.from(h, 'ascii'));
    }),
  );
}

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail = ''] = ip.split('::');
  const parts = (s: string): string[] => (s ? s.split(':') : []);
  const h = parts(head);
  const t = ip.includes('::') ? parts(tail) : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

export interface IssuedCert {
  cert: string;
  key: string;
}

interface CertSpec {
  subject: string;
  publicKey: crypto.KeyObject;
  issuer: { name: string; key: crypto.KeyObject; publicKey: crypto.KeyObject };
  days: number;
  extensions: Buffer[];
}

function sign(s: CertSpec): string {
  const now = Date.now();
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f | 0x01;
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_SHA256,
    name(s.issuer.name),
    seq(time(new Date(now - 60_000)), time(new Date(now + s.days * 86_400_000))),
    name(s.subject),
    s.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...s.extensions, ext('2.5.29.14', false, octets(keyId(s.publicKey))), ext('2.5.29.35', false, seq(tlv(0x80, keyId(s.issuer.publicKey)))))),
  );
  const signature = crypto.sign('sha256', tbs, s.issuer.key);
  const der = seq(tbs, ECDSA_SHA256, bits(signature));
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

const pem = (key: crypto.KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }).toString();

/** A self-signed CA and a head certificate it signs for `hosts` (DNS names and IP addresses). */
export function createClusterCerts(o: { hosts: readonly string[]; days: number; clusterName: string }): { ca: IssuedCert; head: IssuedCert } {
  const caKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const headKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caName = `raysub CA ${o.clusterName}`;
  const issuer = { name: caName, key: caKeys.privateKey, publicKey: caKeys.publicKey };
  const caCert = sign({
    subject: caName,
    publicKey: caKeys.publicKey,
    issuer,
    days: o.days,
    // CA:TRUE, pathlen 0; keyCertSign, cRLSign, digitalSignature.
    extensions: [ext('2.5.29.19', true, seq(bool(true), integer(Buffer.from([0])))), ext('2.5.29.15', true, bits(Buffer.from([0x86]), 1))],
  });
  const headCert = sign({
    subject: o.hosts[0] ?? 'raysub-head',
    publicKey: headKeys.publicKey,
    issuer,
    days: o.days,
    extensions: [
      ext('2.5.29.19', true, seq()),
      ext('2.5.29.15', true, bits(Buffer.from([0x80]), 7)),
      ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))),
      ext('2.5.29.17', false, altNames(o.hosts)),
    ],
  });
  return { ca: { cert: caCert, key: pem(caKeys.privateKey) }, head: { cert: headCert, key: pem(headKeys.privateKey) } };
}
