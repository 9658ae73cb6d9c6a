/**
 * Resource arithmetic shared by the scheduler and the agent. Amounts are held in fixed-point
 * units of 1/10,000 (as Ray does) so fractional CPUs and GPUs never drift.
 */

export type ResourceMap = Record<string, number>;

const SCALE = 10_000;

export function toUnits(amount: number): number {
  return Math.round(amount * SCALE);
}

export function fromUnits(units: number): number {
  return units / SCALE;
}

/** The resources one task asks for. `memory` is in bytes and kept as-is. */
export interface TaskRequest {
  cpus: number;
  gpus: number;
  memory: number;
  custom: ResourceMap;
}

export function emptyRequest(): TaskRequest {
  return { cpus: 0, gpus: 0, memory: 0, custom: {} };
}

/** Free capacity of one node, in units (memory in bytes). GPUs are per device. */
export interface Capacity {
  cpus: number;
  memory: number;
  gpus: number[]; // free units per device index
  custom: ResourceMap;
  /** Task slots: how many more tasks (of any size, 0 CPUs included) the node can run at once. */
  tasks: number;
}

/** The task slots of a node that does not say how many it has (an agent that predates them). */
export const UNLIMITED_TASK_SLOTS = 1_000_000;

/** A capacity that is only read. */
export type ReadonlyCapacity = Readonly<Omit<Capacity, 'gpus' | 'custom'>> & { readonly gpus: readonly number[]; readonly custom: Readonly<ResourceMap> };

export function capacityFromTotals(totals: {
  num_cpus: number;
  num_gpus: number;
  memory: number;
  resources: ResourceMap;
  task_slots?: number | undefined;
}): Capacity {
  const custom: ResourceMap = {};
  for (const [k, v] of Object.entries(totals.resources)) custom[k] = toUnits(v);
  return {
    cpus: toUnits(totals.num_cpus),
    memory: totals.memory,
    gpus: Array.from({ length: Math.floor(totals.num_gpus) }, () => SCALE),
    custom,
    tasks: totals.task_slots ?? UNLIMITED_TASK_SLOTS,
  };
}

/**
 * Choose GPU devices for a request: whole devices for an integer count, or one shared device
 * for a fraction (the fullest device that still fits, to keep whole devices free, as Ray does).
 * Returns the device indices, or null when the request cannot be placed.
 */
export function pickGpus(freeByDevice: readonly number[], gpus: number): number[] | null {
  const want = toUnits(gpus);
  if (want === 0) return [];
  if (want < SCALE) {
    let best = -1;
    for (let i = 0; i < freeByDevice.length; i++) {
      const free = freeByDevice[i] ?? 0;
      if (free >= want && (best < 0 || free < (freeByDevice[best] ?? 0))) best = i;
    }
    return best < 0 ? null : [best];
  }
  const count = Math.round(gpus);
  const whole: number[] = [];
  for (let i = 0; i < freeByDevice.length && whole.length < count; i++) {
    if (freeByDevice[i] === SCALE) whole.push(i);
  }
  return whole.length === count ? whole : null;
}

export interface Placement {
  gpuIds: number[];
}

/** Whether a request fits in a capacity; returns the GPU choice when it does. */
export function fit(cap: ReadonlyCapacity, req: TaskRequest): Placement | null {
  if (cap.tasks < 1) return null;
  if (toUnits(req.cpus) > cap.cpus) return null;
  if (req.memory > cap.memory) return null;
  for (const [k, v] of Object.entries(req.custom)) {
    if (toUnits(v) > (cap.custom[k] ?? 0)) return null;
  }
  const gpuIds = pickGpus(cap.gpus, req.gpus);
  if (gpuIds === null) return null;
  return { gpuIds };
}

function gpuShare(req: TaskRequest): number {
  return toUnits(req.gpus) < SCALE ? toUnits(req.gpus) : SCALE;
}

/** Take (sign -1) or give back (sign +1) a placed request's resources. */
export function applyPlacement(cap: Capacity, req: TaskRequest, gpuIds: readonly number[], sign: 1 | -1): void {
  cap.tasks += sign;
  cap.cpus += sign * toUnits(req.cpus);
  cap.memory += sign * req.memory;
  for (const [k, v] of Object.entries(req.custom)) cap.custom[k] = (cap.custom[k] ?? 0) + sign * toUnits(v);
  const share = gpuShare(req);
  for (const id of gpuIds) {
    if (id < cap.gpus.length) cap.gpus[id] = (cap.gpus[id] ?? 0) + sign * share;
  }
}

/** Whether a request could ever fit on a node with these totals (ignoring what is in use). */
export function couldEverFit(totals: ReadonlyCapacity, req: TaskRequest): boolean {
  return fit(totals, req) !== null;
}

export function cloneCapacity(cap: ReadonlyCapacity): Capacity {
  return { cpus: cap.cpus, memory: cap.memory, gpus: [...cap.gpus], custom: { ...cap.custom }, tasks: cap.tasks };
}

/** Where two capacities differ ("cpus 10000 != 20000, ..."), or null when they are equal. */
export function capacityDiff(got: ReadonlyCapacity, want: ReadonlyCapacity): string | null {
  const off: string[] = [];
  if (got.cpus !== want.cpus) off.push(`cpus ${got.cpus} != ${want.cpus}`);
  if (got.memory !== want.memory) off.push(`memory ${got.memory} != ${want.memory}`);
  if (got.tasks !== want.tasks) off.push(`task slots ${got.tasks} != ${want.tasks}`);
  const gpus = Math.max(got.gpus.length, want.gpus.length);
  for (let i = 0; i < gpus; i++) if ((got.gpus[i] ?? 0) !== (want.gpus[i] ?? 0)) off.push(`gpu ${i} ${got.gpus[i] ?? 0} != ${want.gpus[i] ?? 0}`);
  for (const k of new Set([...Object.keys(got.custom), ...Object.keys(want.custom)])) {
    if ((got.custom[k] ?? 0) !== (want.custom[k] ?? 0)) off.push(`${k} ${got.custom[k] ?? 0} != ${want.custom[k] ?? 0}`);
  }
  return off.length ? off.join(', ') : null;
}

/** A human description of a request, e.g. "4 CPUs, 1 GPU, 2.0 GiB". */
export function describeRequest(req: TaskRequest): string {
  const parts: string[] = [];
  parts.push(`${req.cpus} CPU${req.cpus === 1 ? '' : 's'}`);
  if (req.gpus) parts.push(`${req.gpus} GPU${req.gpus === 1 ? '' : 's'}`);
  if (req.memory) parts.push(formatBytes(req.memory) + ' memory');
  for (const [k, v] of Object.entries(req.custom)) parts.push(`${v} ${k}`);
  return parts.join(', ');
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Which dimension of a request is short on a capacity, for "why is my job waiting". */
export function shortfall(cap: ReadonlyCapacity, req: TaskRequest): string | null {
  if (cap.tasks < 1) return `a task slot; free: 0 task slots`;
  if (toUnits(req.cpus) > cap.cpus) return `${req.cpus} CPUs; free: ${fromUnits(cap.cpus)}`;
  if (req.memory > cap.memory) return `${formatBytes(req.memory)} memory; free: ${formatBytes(cap.memory)}`;
  for (const [k, v] of Object.entries(req.custom)) {
    if (toUnits(v) > (cap.custom[k] ?? 0)) return `${v} ${k}; free: ${fromUnits(cap.custom[k] ?? 0)}`;
  }
  if (pickGpus(cap.gpus, req.gpus) === null) {
    const free = cap.gpus.reduce((a, b) => a + b, 0);
    return `${req.gpus} GPUs; free: ${fromUnits(free)}`;
  }
  return null;
}
