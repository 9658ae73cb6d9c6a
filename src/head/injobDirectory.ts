/**
 * What a job's in-job work looks up across its nodes, kept by the head in memory (it dies with
 * the job): named actors (by namespace and name, scoped to the job) and placement groups (their
 * bundles reserved on nodes by strategy, the groups waiting for room, and by name).
 */
import type { HeadCall, InjobReply, ReplyError } from '../shared/protocol/index.js';
import type { TaskRequest } from '../shared/resources.js';
import { placeBundles, type BundleNode, type BundleStrategy } from './bundlePlacement.js';

/** A pickled actor handle is small (a few KiB); these bound what a job can make the head keep. */
const MAX_HANDLE_BYTES = 64 * 1024;
const MAX_HANDLE_BYTES_PER_JOB = 16 * 1024 * 1024;
const MAX_NAMES_PER_JOB = 10_000;
/** Placement groups of a job that are not removed, and their bundles all together. */
const MAX_GROUPS_PER_JOB = 10_000;
const MAX_BUNDLES_PER_JOB = 10_000;

/** `pickle.dumps(True, protocol=5)`: the value of a placement group's `ready()` ref. */
export const READY_VALUE = Buffer.from([0x80, 0x05, 0x88, 0x2e]).toString('base64');

interface NamedActor {
  actorId: string;
  handle: string;
}

export interface Group {
  jobId: string;
  id: string;
  name: string;
  strategy: BundleStrategy;
  bundles: TaskRequest[];
  /** Where each bundle is reserved, once the group is placed. */
  spots: { nodeId: string; gpuIds: number[] }[] | null;
  ownerNode: string;
  removed: boolean;
}

export interface DirectoryDeps {
  /** Live nodes' free capacity, for placing bundles. */
  nodes(): BundleNode[];
  /** Hold a bundle on a node in the head's view, until the node's reports cover it. */
  hold(nodeId: string, key: string, req: TaskRequest, gpuIds: number[]): void;
  release(nodeId: string, key: string): void;
  /** Tell a bundle's node to reserve (or give back) a bundle. */
  bundle(g: Group, index: number, reserve: boolean): void;
  /** Tell a group's owner it is ready (its `ready()` object). */
  ready(g: Group): void;
}

const nameKey = (namespace: string, name: string): string => `${namespace}\u0000${name}`;

/** The key a bundle's reservation is held under in the head's view of its node (keys name the job). */
export const heldKey = (jobId: string, groupId: string, index: number): string => `${jobId}\u0000${groupId}:b${index}`;

export class InjobDirectory {
  private readonly names = new Map<string, Map<string, NamedActor>>();
  /** Bytes of the handles each job's names hold. */
  private readonly nameBytes = new Map<string, number>();
  private readonly groups = new Map<string, Map<string, Group>>();

  constructor(private readonly d: DirectoryDeps) {}

  /** Answer one request of a job's process, passed on by the agent of node `from`. */
  answer(jobId: string, req: number, r: HeadCall, from: string): InjobReply {
    const ok = (value?: unknown, data?: string): InjobReply => ({ req, ok: true, ...(value !== undefined ? { value } : {}), ...(data ? { data } : {}) });
    const err = (type: ReplyError['type'], message: string): InjobReply => ({ req, ok: false, error: { type, message } });
    switch (r.op) {
      case 'name_actor': {
        let names = this.names.get(jobId);
        if (!names) this.names.set(jobId, (names = new Map<string, NamedActor>()));
        const k = nameKey(r.namespace, r.name);
        const found = names.get(k);
        // The same actor again (a report resent after a lost answer): it has the name.
        if (found && found.actorId !== r.actor_id) {
          if (r.get_if_exists) return ok({ created: false }, found.handle);
          return err('ActorAlreadyExistsError', `The name ${r.name} (namespace=${r.namespace}) is already taken.`);
        }
        if (!found && names.size >= MAX_NAMES_PER_JOB) return err('ValueError', `a job may name at most ${MAX_NAMES_PER_JOB} actors`);
        const bytes = r.handle.length;
        if (Buffer.byteLength(r.handle, 'base64') > MAX_HANDLE_BYTES) return err('ValueError', 'the actor handle is too large');
        const held = (this.nameBytes.get(jobId) ?? 0) - (found?.handle.length ?? 0) + bytes;
        if (held > MAX_HANDLE_BYTES_PER_JOB) return err('ValueError', `a job's named actors may hold at most ${MAX_HANDLE_BYTES_PER_JOB / 1024 / 1024} MiB of handles`);
        this.nameBytes.set(jobId, held);
        names.set(k, { actorId: r.actor_id, handle: r.handle });
        return ok({ created: true });
      }
      case 'get_actor': {
        const found = this.names.get(jobId)?.get(nameKey(r.namespace, r.name));
        if (!found) {
          return err('ValueError', `Failed to look up actor with name '${r.name}'. This could because 1. You are trying to look up a named actor you didn't create. 2. The named actor died. 3. You did not use a namespace matching the namespace of the actor.`);
        }
        return ok({}, found.handle);
      }
      case 'list_actors':
        return ok([...(this.names.get(jobId)?.keys() ?? [])].map((k) => ({ namespace: k.split('\u0000')[0], name: k.split('\u0000')[1] })));
      case 'pg_create': {
        let groups = this.groups.get(jobId);
        if (!groups) this.groups.set(jobId, (groups = new Map<string, Group>()));
        if (groups.has(r.id)) return ok({});
        if (groups.size >= MAX_GROUPS_PER_JOB) return err('ValueError', `a job may have at most ${MAX_GROUPS_PER_JOB} placement groups`);
        let bundles = r.bundles.length;
        for (const g of groups.values()) bundles += g.bundles.length;
        if (bundles > MAX_BUNDLES_PER_JOB) return err('ValueError', `a job's placement groups may have at most ${MAX_BUNDLES_PER_JOB} bundles together`);
        groups.set(r.id, { jobId, id: r.id, name: r.name, strategy: r.strategy, bundles: r.bundles, spots: null, ownerNode: from, removed: false });
        this.place();
        return ok({});
      }
      case 'pg_remove': {
        const g = this.groups.get(jobId)?.get(r.id);
        if (g) this.remove(g);
        return ok({});
      }
      case 'pg_get': {
        const g = [...(this.groups.get(jobId)?.values() ?? [])].find((x) => x.name === r.name && !x.removed);
        if (!g) return err('ValueError', `Failed to look up placement group with name: ${r.name}`);
        return ok({ id: g.id, bundles: g.bundles.map(rayBundle), owner: g.ownerNode });
      }
      case 'pg_table': {
        const table: Record<string, unknown> = {};
        for (const g of this.groups.get(jobId)?.values() ?? []) if (!r.id || g.id === r.id) table[g.id] = describe(g);
        return ok(table);
      }
    }
  }

  /** Where a group's bundle is (null while the group waits for room, or is gone). */
  bundleNode(jobId: string, groupId: string, index: number): string | null {
    const g = this.groups.get(jobId)?.get(groupId);
    if (!g?.spots || g.removed) return null;
    return g.spots[index < 0 ? 0 : index]?.nodeId ?? null;
  }

  hasGroup(jobId: string, groupId: string): boolean {
    const g = this.groups.get(jobId)?.get(groupId);
    return Boolean(g && !g.removed);
  }

  /** Reserve the bundles of waiting groups that fit now, oldest first. */
  place(): void {
    for (const groups of this.groups.values()) {
      for (const g of groups.values()) {
        if (g.spots || g.removed) continue;
        const spots = placeBundles(this.d.nodes(), g.bundles, g.strategy);
        if (!spots) continue;
        g.spots = spots;
        spots.forEach((s, i) => {
          this.d.hold(s.nodeId, heldKey(g.jobId, g.id, i), g.bundles[i] as TaskRequest, s.gpuIds);
          this.d.bundle(g, i, true);
        });
        this.d.ready(g);
      }
    }
  }

  private remove(g: Group): void {
    if (g.removed) return;
    g.removed = true;
    g.spots?.forEach((s, i) => {
      this.d.release(s.nodeId, heldKey(g.jobId, g.id, i));
      this.d.bundle(g, i, false);
    });
    // Gone for good: its tasks still on their way fail as the group's does not exist.
    this.groups.get(g.jobId)?.delete(g.id);
  }

  /** A node holds a bundle on its own ledger now (its reported usage covers it). */
  bundleHeld(nodeId: string, jobId: string, groupId: string, index: number): void {
    const g = this.groups.get(jobId)?.get(groupId);
    if (g?.spots?.[index]?.nodeId === nodeId) this.d.release(nodeId, heldKey(jobId, groupId, index));
  }

  /** An actor died: its name is free again. */
  actorGone(jobId: string, actorId: string): void {
    const names = this.names.get(jobId);
    if (!names) return;
    for (const [k, a] of names) {
      if (a.actorId !== actorId) continue;
      names.delete(k);
      this.nameBytes.set(jobId, Math.max(0, (this.nameBytes.get(jobId) ?? 0) - a.handle.length));
    }
  }

  /** A node is gone: groups with bundles there wait to be placed again. */
  nodeLost(nodeId: string): void {
    for (const groups of this.groups.values()) {
      for (const g of groups.values()) {
        if (!g.spots || g.removed || !g.spots.some((s) => s.nodeId === nodeId)) continue;
        g.spots.forEach((s, i) => {
          if (s.nodeId !== nodeId) {
            this.d.release(s.nodeId, heldKey(g.jobId, g.id, i));
            this.d.bundle(g, i, false);
          }
        });
        g.spots = null;
      }
    }
    this.place();
  }

  forgetJob(jobId: string): void {
    for (const g of this.groups.get(jobId)?.values() ?? []) g.spots?.forEach((s, i) => this.d.release(s.nodeId, heldKey(jobId, g.id, i)));
    this.groups.delete(jobId);
    this.names.delete(jobId);
    this.nameBytes.delete(jobId);
  }
}

function rayBundle(r: TaskRequest): Record<string, number> {
  const out: Record<string, number> = {};
  if (r.cpus) out.CPU = r.cpus;
  if (r.gpus) out.GPU = r.gpus;
  if (r.memory) out.memory = r.memory;
  Object.assign(out, r.custom);
  return out;
}

function describe(g: Group): unknown {
  return {
    placement_group_id: g.id,
    name: g.name,
    strategy: g.strategy,
    state: g.removed ? 'REMOVED' : g.spots ? 'CREATED' : 'PENDING',
    bundles: Object.fromEntries(g.bundles.map((b, i) => [i, rayBundle(b)])),
    bundles_to_node_id: g.spots ? Object.fromEntries(g.spots.map((s, i) => [i, s.nodeId])) : {},
  };
}

