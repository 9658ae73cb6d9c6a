/**
 * This agent among the others: its object server (other agents fetch its jobs' large objects and
 * ask how objects it owns stand) and its client for theirs, with the addresses the head tells it.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { RefsResponse } from '../../shared/protocol/index.js';
import type { JobState } from './jobState.js';
import { fromRelay, type ObjValue } from './objects.js';
import { PeerClient, PeerServer } from './peer.js';

export class Peers {
  private readonly server: PeerServer;
  private readonly client: PeerClient;
  /** Object servers of the live nodes, as the head last said. */
  nodes: Record<string, string> = {};
  /** Objects to free on other nodes, per `<node> <job>`, sent together once this turn is over. */
  private readonly toFree = new Map<string, string[]>();

  constructor(
    /** The peer token the head gave this agent ('' before it registered). */
    token: () => string,
    private readonly log: Logger,
    private readonly me: () => string,
    private readonly job: (jobId: string) => JobState | undefined,
  ) {
    this.server = new PeerServer(token, { objectFile: (j, id) => this.objectFile(j, id), refs: (j, ids, w) => this.refs(j, ids, w), free: (j, ids) => this.job(j)?.objects.release(ids) }, log);
    this.client = new PeerClient(token);
  }

  start(host: string): Promise<void> {
    return this.server.start(host);
  }

  get address(): string | null {
    return this.server.address;
  }

  /** Copy object `id` of `jobId` from the agent of `node` into `dest`. */
  async fetchRemote(jobId: string, node: string, id: string, dest: string): Promise<void> {
    const url = this.nodes[node];
    if (!url) throw new Error(`no address known for node ${node}`);
    await this.client.fetchObject(url, jobId, id, dest);
  }

  /** How object `id` stands at its owner's agent, once it is ready there. */
  async askOwner(jobId: string, owner: string, id: string): Promise<ObjValue> {
    for (let tries = 0; ; tries++) {
      const url = this.nodes[owner];
      if (url) {
        const res = await this.client.refs(url, jobId, [id], 20_000);
        const item = res.items[0];
        if (item?.value) return fromRelay(item.value);
        if (item && !item.known && tries > 3) throw new Error(`its owner ${owner} does not know it`);
      } else if (tries > 50) throw new Error(`its owner ${owner} is not a live node`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * The owner here dropped object `id` of `jobId`, which `node` holds (its task ran there): that
   * node frees it. Best effort: what a node does not hear of goes when the job ends.
   */
  freeRemote(jobId: string, node: string, id: string): void {
    const key = `${node} ${jobId}`;
    let ids = this.toFree.get(key);
    if (!ids) {
      this.toFree.set(key, (ids = []));
      setImmediate(guarded(this.log, 'freeing objects on another node', () => this.sendFree(key, jobId, node)));
    }
    ids.push(id);
  }

  private async sendFree(key: string, jobId: string, node: string): Promise<void> {
    const ids = this.toFree.get(key) ?? [];
    this.toFree.delete(key);
    const url = this.nodes[node];
    if (!url) return;
    for (let at = 0; at < ids.length; at += 10_000) {
      await this.client.free(url, jobId, ids.slice(at, at + 10_000)).catch((err: unknown) => this.log.info({ err: (err as Error).message, node }, 'could not free objects on another node; they go when the job ends'));
    }
  }

  private objectFile(jobId: string, id: string): string | null {
    const job = this.job(jobId);
    const v = job?.objects.get(id);
    if (!job || !v || v.kind !== 'file') return null;
    return v.node === this.me() ? job.objects.filePath(id) : null;
  }

  private async refs(jobId: string, ids: string[], waitMs: number): Promise<RefsResponse> {
    const job = this.job(jobId);
    if (!job) return { items: ids.map((id) => ({ id, value: null, known: false })) };
    const ready = Promise.all(ids.filter((id) => job.objects.has(id)).map((id) => job.objects.whenReady(id, '')));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    return {
      items: ids.map((id) => {
        const v = job.objects.get(id);
        return { id, value: v ? job.objects.toRelay(v) : null, known: job.objects.has(id) };
      }),
    };
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.client.close();
  }
}
