/**
 * The soak's cluster: a head with its embedded agent and standalone agents, all real processes on
 * 127.0.0.1, and the chaos done to them (SIGKILL and restart of an agent or of the head, a second
 * agent trying to join under a live node's name). Every process ever started is kept, so the
 * checks can read what each one logged.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { RaysubClient } from '../../src/client/index.js';
import { cliPath, startAgent, startHead, tempDir, waitFor, type ManagedProcess, type TestHead } from '../helpers/cluster.js';

export interface Retention {
  jobTtlS: number;
  maxFinishedJobs: number;
  packageTtlS: number;
}

export interface SoakClusterOptions {
  retention: Retention;
  /** Names of the standalone agents. */
  agents: string[];
  cpusPerNode: number;
}

export const HEAD_NODE = 'soak-head';
/** The head's default lease (agents are declared lost this long after their last heartbeat). */
const LEASE_MS = 15_000;

export interface ChaosEvent {
  at: number;
  what: 'agent-kill' | 'agent-restart' | 'head-kill' | 'head-restart' | 'duplicate-refused';
  node: string;
  /** For restarts: how long the process was down, ms. */
  downMs?: number;
}

interface AgentSlot {
  proc: ManagedProcess | null;
  workDir: string;
}

export class SoakCluster {
  head!: TestHead;
  /** A client that keeps trying while the head restarts (same address and token throughout). */
  client!: RaysubClient;
  readonly agents = new Map<string, AgentSlot>();
  readonly events: ChaosEvent[] = [];
  /** Every process started, with the name of its node, for the log checks. */
  readonly processes: { node: string; proc: ManagedProcess }[] = [];
  readonly leaseMs = LEASE_MS;
  private headArgs: string[] = [];
  private headEnv: Record<string, string> = {};

  private constructor(readonly opts: SoakClusterOptions) {}

  static async start(opts: SoakClusterOptions): Promise<SoakCluster> {
    const c = new SoakCluster(opts);
    const r = opts.retention;
    c.headArgs = ['--node-name', HEAD_NODE, '--job-ttl', `${r.jobTtlS}s`, '--max-finished-jobs', String(r.maxFinishedJobs), '--unused-package-ttl', String(r.packageTtlS)];
    c.head = await startHead({ numCpus: opts.cpusPerNode, args: c.headArgs, env: c.headEnv });
    c.processes.push({ node: HEAD_NODE, proc: c.head });
    c.client = new RaysubClient({ address: c.head.url, token: c.head.token, retries: 12 });
    for (const name of opts.agents) {
      const workDir = tempDir(`raysub-soak-${name}-`);
      c.agents.set(name, { proc: null, workDir });
      await c.startAgent(name);
    }
    return c;
  }

  private async startAgent(name: string): Promise<void> {
    const slot = this.agents.get(name);
    if (!slot) throw new Error(`no agent ${name}`);
    slot.proc = await startAgent(this.head, { name, numCpus: this.opts.cpusPerNode, workDir: slot.workDir, args: ['--unused-package-ttl', String(this.opts.retention.packageTtlS)] });
    this.processes.push({ node: name, proc: slot.proc });
  }

  /** The embedded agent's work dir (under the head's data dir). */
  headWorkDir(): string {
    return path.join(this.head.dataDir, 'agent');
  }

  /** Every node's work dir, by node name. */
  workDirs(): Map<string, string> {
    return new Map([[HEAD_NODE, this.headWorkDir()], ...[...this.agents].map(([n, s]) => [n, s.workDir] as [string, string])]);
  }

  /** Pids of the live processes, by node name. */
  pids(): Map<string, number> {
    const out = new Map<string, number>();
    const alive = (p: ManagedProcess | null) => p && p.proc.exitCode === null && p.proc.signalCode === null && p.proc.pid !== undefined;
    if (alive(this.head)) out.set(HEAD_NODE, this.head.pid);
    for (const [n, s] of this.agents) if (alive(s.proc) && s.proc?.proc.pid) out.set(n, s.proc.proc.pid);
    return out;
  }

  /** SIGKILL an agent, leave it down for `downMs`, start it again on the same work dir (the same node). */
  async killAgent(name: string, downMs: number): Promise<void> {
    const slot = this.agents.get(name);
    if (!slot?.proc) throw new Error(`agent ${name} is not running`);
    this.events.push({ at: Date.now(), what: 'agent-kill', node: name });
    await slot.proc.kill('SIGKILL');
    const down = Date.now();
    await new Promise((r) => setTimeout(r, downMs));
    await this.startAgent(name);
    this.events.push({ at: Date.now(), what: 'agent-restart', node: name, downMs: Date.now() - down });
  }

  /** SIGKILL the head (its embedded agent with it) and start it again on the same port and data dir. */
  async killHead(downMs: number): Promise<void> {
    this.events.push({ at: Date.now(), what: 'head-kill', node: HEAD_NODE });
    await this.head.kill('SIGKILL');
    const down = Date.now();
    await new Promise((r) => setTimeout(r, downMs));
    this.head = await startHead({ numCpus: this.opts.cpusPerNode, args: this.headArgs, env: this.headEnv, dataDir: this.head.dataDir, port: Number(new URL(this.head.url).port) });
    this.processes.push({ node: HEAD_NODE, proc: this.head });
    this.events.push({ at: Date.now(), what: 'head-restart', node: HEAD_NODE, downMs: Date.now() - down });
  }

  /**
   * A second agent started under a live node's name (and a work dir of its own, as on another
   * machine): it must be refused with a clear message and exit, leaving the live node alone.
   */
  async duplicateAgent(name: string): Promise<{ code: number | null; output: string }> {
    const workDir = tempDir('raysub-soak-dup-');
    const proc = spawn(process.execPath, [cliPath, 'start', '--address', this.head.url, '--node-name', name, '--work-dir', workDir, '--num-cpus', '1', '--num-gpus', '0', '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RAYSUB_TOKEN: this.head.token },
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve(null);
      }, 60_000);
      proc.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    this.events.push({ at: Date.now(), what: 'duplicate-refused', node: name });
    return { code, output };
  }

  /** When any process of the cluster was killed between `from` and `to` (a job's NODE_LOST is then excused). */
  killedBetween(from: number, to: number): boolean {
    return this.events.some((e) => (e.what === 'agent-kill' || e.what === 'head-kill') && e.at >= from - 1000 && e.at <= to);
  }

  /** Whether the head was down at some moment between `from` and `to`. */
  headDownBetween(from: number, to: number): boolean {
    return this.events.some((k, i) => {
      if (k.what !== 'head-kill' || k.at > to) return false;
      const back = this.events.slice(i).find((e) => e.what === 'head-restart');
      return !back || back.at >= from;
    });
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Wait until the head answers (after a restart). */
export async function headAnswers(c: SoakCluster): Promise<void> {
  await waitFor(() => c.client.version(), { what: 'the head to answer', timeoutMs: 60_000, intervalMs: 200 });
}
