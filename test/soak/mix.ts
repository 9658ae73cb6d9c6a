/**
 * The soak's job mix: a seeded random choice among the kinds of work real users submit (plain
 * jobs, arrays of up to 2,000 tasks, retries, timeouts, stops, quiet jobs followed by the CLI,
 * in-job drivers that exit early or run away, big and many-file packages, jobs that print a lot).
 * Every task marks its attempt in its own output (`SOAK <attempt> begin|end`), which is how the
 * invariants see what ran, how often, and whether its log is whole.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { JobStatus } from '../../src/shared/protocol/index.js';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Kind = 'plain' | 'array' | 'retry' | 'timeout' | 'stop' | 'quiet' | 'driver-exit' | 'runaway' | 'big-package' | 'many-files' | 'loud';

export interface Expect {
  status: JobStatus;
  /** raysub's error type for a FAILED or STOPPED job. */
  errorType?: string;
  /** Lines each task's final attempt prints between its begin and end markers (checked for completeness). */
  lines?: number;
  /** Tasks mark their attempts (shell and Python entrypoints of the mix do; in-job drivers do not). */
  marked: boolean;
}

export interface SoakJob {
  id: string;
  kind: Kind;
  parallel: number;
  /** How it is submitted: through the SDK (a request) or the real CLI (packing a working dir, following its log). */
  via: { sdk: Record<string, unknown> } | { cli: string[]; quietS?: number };
  expect: Expect;
  /** For `stop`: stop it this long after submitting. */
  stopAfterMs?: number;
}

const BEGIN = 'echo "SOAK $RAYSUB_ATTEMPT begin"';
const END = 'echo "SOAK $RAYSUB_ATTEMPT end"';

export interface MixOptions {
  /** Largest array job. */
  maxArray: number;
  /** Files in a many-file package. */
  manyFiles: number;
  /** Size of the big package's incompressible file, in bytes. */
  bigBytes: number;
  /** Lines a loud job prints (about 60 bytes each). */
  loudLines: number;
  /** Where working dirs for package jobs are written. */
  scratch: string;
  /** The in-job driver fixture (a working dir with main.py). */
  driverDir: string;
}

const WEIGHTS: [Kind, number][] = [
  ['plain', 4],
  ['array', 3],
  ['retry', 2],
  ['timeout', 1],
  ['stop', 2],
  ['quiet', 1],
  ['driver-exit', 2],
  ['runaway', 1],
  ['big-package', 1],
  ['many-files', 1],
  ['loud', 1],
];

export class JobMix {
  private n = 0;
  private bigArrayDone = false;
  constructor(
    private readonly rand: () => number,
    private readonly opts: MixOptions,
  ) {}

  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }

  pickKind(): Kind {
    const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
    let r = this.rand() * total;
    for (const [k, w] of WEIGHTS) if ((r -= w) < 0) return k;
    return 'plain';
  }

  /** The next job of the mix, of `kind` (random when not given). */
  next(kind: Kind = this.pickKind()): SoakJob {
    const id = `soak-${String(++this.n).padStart(4, '0')}-${kind}`;
    const sdk = (entrypoint: string, more: Record<string, unknown> = {}, raysub: Record<string, unknown> = {}) => ({
      sdk: { entrypoint, entrypoint_num_cpus: 0.5, ...more, raysub: { max_retries: 2, retry_backoff_s: 0, ...raysub } },
    });
    const ok: Expect = { status: 'SUCCEEDED', marked: true };
    switch (kind) {
      case 'plain': {
        const lines = this.int(0, 50);
        return { id, kind, parallel: 1, via: sdk(`${BEGIN}; for i in $(seq 1 ${lines}); do echo "line $i"; done; sleep ${this.int(0, 3)}; ${END}`), expect: { ...ok, lines } };
      }
      case 'array': {
        // The first one the largest, then mostly small; 0-CPU tasks too (bounded by task slots, not CPUs).
        const big = !this.bigArrayDone || this.rand() < 0.2;
        this.bigArrayDone = true;
        const parallel = big ? this.opts.maxArray : this.int(2, Math.max(2, Math.floor(this.opts.maxArray / 10)));
        const cpus = this.rand() < 0.3 ? 0 : 0.25;
        return { id, kind, parallel, via: sdk(`${BEGIN}; echo "task $RAYSUB_TASK_INDEX of $RAYSUB_TASK_COUNT"; ${END}`, { entrypoint_num_cpus: cpus }, { parallel }), expect: { ...ok, lines: 1 } };
      }
      case 'retry':
        // The first attempt fails after marking itself; a later one succeeds.
        return {
          id,
          kind,
          parallel: 1,
          via: sdk(`${BEGIN}; if [ "$RAYSUB_ATTEMPT" -le 1 ]; then echo "failing on purpose"; exit 3; fi; ${END}`, {}, { max_retries: 3 }),
          expect: { ...ok },
        };
      case 'timeout':
        return { id, kind, parallel: 1, via: sdk(`${BEGIN}; sleep 300; ${END}`, {}, { timeout_s: this.int(2, 5), max_retries: 0 }), expect: { status: 'FAILED', errorType: 'TIMEOUT', marked: true } };
      case 'stop':
        return {
          id,
          kind,
          parallel: 1,
          via: sdk(`${BEGIN}; sleep 300; ${END}`, {}, { max_retries: 0 }),
          expect: { status: 'STOPPED', marked: true },
          stopAfterMs: this.int(0, 6000),
        };
      case 'quiet': {
        // Prints nothing for longer than the CLI's idle limit would allow without keep-alives.
        const quietS = this.int(20, 40);
        return { id, kind, parallel: 1, via: { cli: ['--entrypoint-num-cpus', '0.5', '--max-retries', '2', '--', 'sh', '-c', `${BEGIN}; sleep ${quietS}; echo done; ${END}`], quietS }, expect: { ...ok, lines: 1 } };
      }
      case 'driver-exit':
        return { id, kind, parallel: 1, via: { cli: ['--working-dir', this.opts.driverDir, '--entrypoint-num-cpus', '0', '--', 'python3', 'main.py', 'exit-without-get'] }, expect: { status: 'SUCCEEDED', marked: false } };
      case 'runaway':
        return {
          id,
          kind,
          parallel: 1,
          via: { cli: ['--working-dir', this.opts.driverDir, '--timeout', String(this.int(3, 6)), '--', 'python3', 'main.py', 'runaway'] },
          expect: { status: 'FAILED', errorType: 'TIMEOUT', marked: false },
        };
      case 'big-package': {
        const dir = this.packageDir(id, { 'blob.bin': crypto.randomBytes(this.opts.bigBytes) });
        const check = `import os,sys; n=os.path.getsize("blob.bin"); sys.exit(0 if n == ${this.opts.bigBytes} else 9)`;
        return { id, kind, parallel: 1, via: { cli: ['--working-dir', dir, '--entrypoint-num-cpus', '0.5', '--max-retries', '2', '--', 'sh', '-c', `${BEGIN}; python3 -c '${check}' && ${END}`] }, expect: ok };
      }
      case 'many-files': {
        const files: Record<string, string> = {};
        for (let i = 0; i < this.opts.manyFiles; i++) files[`d${i % 50}/f${i}.txt`] = String(i);
        const dir = this.packageDir(id, files);
        // Everything arrived: the count of files (the nonce included) is the count written.
        return {
          id,
          kind,
          parallel: 1,
          via: { cli: ['--working-dir', dir, '--entrypoint-num-cpus', '0.5', '--max-retries', '2', '--', 'sh', '-c', `${BEGIN}; test "$(find . -type f | wc -l)" -eq ${this.opts.manyFiles + 1} && ${END}`] },
          expect: ok,
        };
      }
      case 'loud': {
        const lines = this.opts.loudLines;
        const py = `import sys; w = sys.stdout.write; [w("line %d ${'x'.repeat(48)}\\n" % i) for i in range(1, ${lines + 1})]`;
        return { id, kind, parallel: 1, via: sdk(`${BEGIN}; python3 -c '${py}'; ${END}`), expect: { ...ok, lines } };
      }
    }
  }

  /** A working dir of `files` plus a nonce, so each package is new to the head (and to collection). */
  private packageDir(id: string, files: Record<string, string | Buffer>): string {
    const dir = path.join(this.opts.scratch, id);
    for (const [name, content] of Object.entries({ ...files, 'nonce.txt': `${id}\n` })) {
      const p = path.join(dir, name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
    return dir;
  }
}
