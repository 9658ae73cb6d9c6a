/**
 * Programs written for Ray run unchanged as raysub jobs: `import ray` resolves to raysub's library
 * (or to a real Ray the job brings), functions defined in the driver travel by value, and Ray's core
 * API gives Ray's results. Each program in test/fixtures/ray-programs prints one JSON line per
 * check; the test holds Ray's documented result for each, and, where Ray 2.58 can be installed, runs
 * the same program under Ray and holds it to the same results.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli, startHead, tempDir, type TestHead } from './helpers/cluster.js';
import { ensureRayVenv, rayPython, run } from './helpers/rayVenv.js';
import { buildWheel, offlinePipEnv } from './helpers/runtimeEnvFixtures.js';

const PROGRAMS = path.join(repoRoot, 'test', 'fixtures', 'ray-programs');
let raySkip: string | null = null;

beforeAll(async () => {
  raySkip = await ensureRayVenv();
  if (raySkip) console.log(`Ray side of the ray-programs tests skipped: ${raySkip}`);
}, 600_000);

type Checks = Map<string, Record<string, unknown>>;

function checks(stdout: string): Checks {
  const out: Checks = new Map();
  for (const line of stdout.split('\n')) {
    if (!/^\{.*"check": .*\}$/.test(line)) continue;
    const { check, ...rest } = JSON.parse(line) as Record<string, unknown>;
    out.set(String(check), rest);
  }
  return out;
}

async function underRaysub(head: TestHead, program: string, extra: string[] = [], dir = PROGRAMS, done = true): Promise<{ stdout: string; id: string }> {
  const id = `${path.basename(program, '.py')}-${Math.random().toString(36).slice(2, 8)}`;
  const res = await runCli(['job', 'submit', '-q', '--submission-id', id, '--working-dir', dir, '--entrypoint-num-cpus', '0', ...extra, '--', 'python3', program], {
    env: head.env,
    timeoutMs: 240_000,
  });
  expect(res.code, res.stdout + res.stderr).toBe(0);
  if (done) expect(res.stdout).toMatch(/^done$/m);
  return { stdout: res.stdout, id };
}

/**
 * Start the program under Ray 2.58 (a local Ray instance of its own); `output()` is its stdout, or
 * null when Ray is missing. Started before the raysub side, so both run at once.
 */
function underRay(program: string): { output: () => Promise<string | null> } {
  const res = raySkip ? null : run(rayPython, [program], { RAY_ADDRESS: '', RAY_USAGE_STATS_ENABLED: '0', RAY_DEDUP_LOGS: '0', PYTHONPATH: '' }, 240_000, PROGRAMS);
  return {
    output: async () => {
      if (!res) return null;
      const r = await res;
      expect(r.code, r.out).toBe(0);
      return r.stdout;
    },
  };
}

/** Hold raysub's checks, and Ray's when it ran, to Ray's documented results. */
function expectRayResults(ours: Checks, theirs: Checks | null, expected: Record<string, Record<string, unknown>>): void {
  for (const [name, want] of Object.entries(expected)) {
    expect(ours.get(name), `raysub: ${name}`).toEqual(want);
    if (theirs) expect(theirs.get(name), `Ray: ${name}`).toEqual(want);
  }
}

const mro = (...names: string[]): string[] => [...names, 'Exception', 'BaseException', 'object'];

const CORE: Record<string, Record<string, unknown>> = {
  module_state: { same: true },
  by_value: { lam: [0, 1, 4, 9], closure: 15 },
  main_class: { x: 2, y: 3, same_class: true },
  recursive: { fib: 8 },
  task_error: { cls: 'RayTaskError(MyError)', task_error: true, ray_error: true, cause: 'MyError', named: true, message: true, frames: true },
  nested_error: { cls: 'RayTaskError(KeyError)', cause: 'KeyError', both: true },
  hierarchy: {
    mro: {
      RayError: mro('RayError'),
      RayTaskError: mro('RayTaskError', 'RayError'),
      GetTimeoutError: [...mro('GetTimeoutError', 'RayError', 'TimeoutError', 'OSError')],
      RayActorError: mro('RayActorError', 'RayError'),
      ActorDiedError: mro('ActorDiedError', 'RayActorError', 'RayError'),
      ActorUnavailableError: mro('ActorUnavailableError', 'RayActorError', 'RayError'),
      TaskCancelledError: mro('TaskCancelledError', 'RayError'),
      ObjectLostError: mro('ObjectLostError', 'RayError'),
      OwnerDiedError: mro('OwnerDiedError', 'ObjectLostError', 'RayError'),
      ObjectFetchTimedOutError: mro('ObjectFetchTimedOutError', 'ObjectLostError', 'RayError'),
      WorkerCrashedError: mro('WorkerCrashedError', 'RayError'),
      TaskUnschedulableError: mro('TaskUnschedulableError', 'RayError'),
      ActorUnschedulableError: mro('ActorUnschedulableError', 'RayError'),
      RaySystemError: mro('RaySystemError', 'RayError'),
      OutOfMemoryError: mro('OutOfMemoryError', 'RayError'),
      NodeDiedError: mro('NodeDiedError', 'RayError'),
      ObjectStoreFullError: mro('ObjectStoreFullError', 'RayError'),
      RuntimeEnvSetupError: mro('RuntimeEnvSetupError', 'RayError'),
      ActorAlreadyExistsError: mro('ActorAlreadyExistsError', 'ValueError', 'RayError'),
      PendingCallsLimitExceeded: mro('PendingCallsLimitExceeded', 'RayError'),
    },
  },
  get_timeout: { timed_out: true, zero: true, early_error: true },
  wait: {
    ready: [false],
    not_ready: 1,
    at_zero: 0,
    single: 'TypeError',
    dupes: 'ValueError',
    too_many: 'ValueError',
    empty: [[], []],
    get_non_ref: 'ValueError',
    put_ref: 'TypeError',
  },
  put: { total: 4999950000, through_task: 144 },
  future: { value: 0.2 },
  await: { value: [0.1, [0, 1, 4, 9]] },
  runtime_context: { namespace: 'compat', job: true, node: true, in_task: [{ CPU: 1 }, 'compat', true, null], in_half: { CPU: 0.5 } },
  init: { initialized: true, again: 'RuntimeError', ignored: null, unknown: 'RuntimeError' },
  options: { bad_key: 'ValueError', bad_type: 'TypeError', negative: 'ValueError', named: 0, direct_call: 'TypeError', env: 'yes', env_after: null },
  actor: { values: [6, 7, 8], handle: true, value: 8, me: [true, true], in_task: 18, no_method: 'AttributeError', direct: 'TypeError', call_direct: 'TypeError' },
  actor_death: { exited: 'ActorDiedError', after: 'ActorDiedError', killed: 'ActorDiedError', broken: 'ActorDiedError', kill_task: 'ValueError' },
};

const UTIL: Record<string, Record<string, unknown>> = {
  actor_pool: { ordered: [2, 4, 6, 8, 10], unordered: [2, 4, 6, 8, 10], nexts: [20, 40, 60], has_next: false, free: true, empty: 'StopIteration', push_twice: 'ValueError' },
  queue: {
    full: true,
    got: [1, 2, 3],
    empty: true,
    empty_now: true,
    is_empty: true,
    size: 0,
    through_tasks: [0, 1, 2, 3, 4, 5],
    produced: 6,
    full_is: true,
    empty_is: true,
    batch: true,
  },
  pool: {
    mapped: [0, 1, 8, 27, 64, 125, 216, 343, 512, 729],
    star: [3, 7],
    applied: 11,
    later: 64,
    ready: true,
    successful: true,
    imap: [0, 1, 8, 27, 64],
    imap_unordered: [0, 1, 8, 27, 64],
    lam: [2, 3, 4],
    failed: 'ValueError',
  },
  helpers: { as_completed: [0, 1, 4, 9], first_not_slowest: true, map_unordered: [0, 1, 4, 9, 16] },
};

const ACTORS: Record<string, Record<string, unknown>> = {
  returns: {
    three: [1, 2, 3],
    none: null,
    streamed: [0, 10, 20, 30],
    broken: [0, 1, 'RayTaskError(ValueError)'],
    dynamic: [100, 101, 102],
    async_stream: [0, 10, 20],
    pair: ['a', 'b'],
    method_stream: [0, 1, 2],
    options: [1, 2, 3],
  },
  retries: { flaky: 'ok', flaky_tries: 3, exhausted: 'RayTaskError(ValueError)', picky: 'RayTaskError(TypeError)', picky_tries: 1, crashed: 'second try' },
  restarts: { first: [1, false], crash: 'ActorUnavailableError', again: [1, true], crash_again: 'ActorDiedError', after: 'ActorDiedError', revived: [1, true] },
  concurrency: { threaded: [true, true], asynchronous: [true, true, true, true] },
  actor_queue: { slow: 'slow', steps: [0, 1, 2, 3, 4, 5], seen: [-1, 'slow', 0, 1, 2, 3, 4, 5], in_turn: true, async_at_once: 1 },
  named: {
    found: 'one',
    other: 'two',
    taken: 'ActorAlreadyExistsError',
    taken_is_value_error: true,
    if_exists: 'one',
    missing: 'ValueError',
    listed: ['alpha'],
    detached: 'kept',
  },
  named_gone: { gone: true },
  cancel: { queued: 'TaskCancelledError', running: 'RayTaskError(TaskCancelledError)', quickly: true, forced: 'TaskCancelledError', blockers: [3, 3] },
  cluster: { cpus: 2, free_cpus_at_most: true, nodes: true, alive: true, node_keys: ['Alive', 'NodeID', 'NodeManagerAddress', 'Resources'] },
  placement_group: { ready: true, in_pg: [true, true], strict_spread_on_one_node: false, bad_strategy: 'ValueError', empty: 'ValueError', count: 2 },
  logical: { memory: 200, unpinned: true },
  sweep: { swept: true, freed: true },
};

describe('Ray programs run unchanged as raysub jobs', () => {
  it("Ray's Fibonacci example (no __main__ guard) prints what it prints under Ray, each task running once", async () => {
    const head = await startHead({ numCpus: 2 });
    // Under Ray at the same time: both sides mostly wait, so the test takes the longer of the two.
    const ray = underRay('fibonacci.py');
    const ours = await underRaysub(head, 'fibonacci.py', [], PROGRAMS, false);
    const shape = (out: string): string[] =>
      out
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^done$/.test(l) && !/^\d{4}-\d\d-\d\d .* INFO /.test(l))
        .map((l) => l.replace(/execution time: [\d.e-]+/, 'execution time: T'));
    const cpus = os.cpus().length;
    const lines = [
      'Sequence size: 3000, Local execution time: T',
      `[${Array(cpus).fill(3000).join(', ')}]`,
      'Sequence size: 3000, Remote execution time: T',
      `[${Array(cpus).fill(3000).join(', ')}]`,
    ];
    // The script's top level ran once, in the driver: no worker printed anything.
    expect(shape(ours.stdout)).toEqual(lines);
    const job = await head.client.getJob(ours.id);
    expect(job.raysub?.injob).toMatchObject({ finished: cpus, failed: 0, pending: 0, running: 0 });
    const theirs = await ray.output();
    if (theirs !== null) expect(shape(theirs)).toEqual(lines);
  }, 600_000);

  it("Ray core's API: tasks, functions by value, errors, get/wait, futures, runtime context, options, actors", async () => {
    const head = await startHead({ numCpus: 2 });
    const ray = underRay('core.py');
    const ours = checks((await underRaysub(head, 'core.py')).stdout);
    const theirs = await ray.output();
    expectRayResults(ours, theirs === null ? null : checks(theirs), CORE);
  }, 600_000);

  it('ray.util: ActorPool, Queue, multiprocessing.Pool, as_completed, map_unordered', async () => {
    const head = await startHead({ numCpus: 2 });
    const ray = underRay('util.py');
    const ours = checks((await underRaysub(head, 'util.py')).stdout);
    const theirs = await ray.output();
    expectRayResults(ours, theirs === null ? null : checks(theirs), UTIL);
  }, 600_000);

  it('actors and tasks beyond the basics: returns and generators, retries, restarts, concurrency, names, cancel, cluster, placement groups, logical resources, a sweep of 20 one-CPU actors on 2 CPUs', async () => {
    const head = await startHead({ numCpus: 2 });
    const ray = underRay('actors.py');
    const ours = checks((await underRaysub(head, 'actors.py')).stdout);
    const theirs = await ray.output();
    expectRayResults(ours, theirs === null ? null : checks(theirs), ACTORS);
  }, 600_000);

  it('ray.init(num_cpus=1) holds the job to one CPU at a time, on a node of two', async () => {
    const head = await startHead({ numCpus: 2 });
    const ray = underRay('init_cpus.py');
    const ours = checks((await underRaysub(head, 'init_cpus.py')).stdout);
    const theirs = await ray.output();
    expectRayResults(ours, theirs === null ? null : checks(theirs), { init_cpus: { cpus: 1, overlapping: false } });
  }, 600_000);

  it('what raysub leaves out raises NotImplementedError naming the alternative; a real Ray the job brings takes precedence', async () => {
    const wheels = tempDir('raysub-fake-ray-');
    buildWheel(wheels, 'ray', '9.9.9', 'ray', 'WHICH = "the job\'s own ray"\n');
    const head = await startHead({ numCpus: 2, env: offlinePipEnv(wheels) });
    const c = checks((await underRaysub(head, 'raysub_only.py')).stdout);
    expect(c.get('module')).toEqual({ raysub: true, version: '2.58.0', file: 'ray' });
    const unsupported = c.get('unsupported') as Record<string, [string, boolean, boolean, string]>;
    const alternatives: Record<string, RegExp> = {
      'ray.data': /Ray Data .* not supported .*inside tasks .*ray\[data\]/,
      'ray.tune': /Ray Tune .*each trial as a task or actor/,
      'ray.train': /Ray Train .*--entrypoint-num-gpus/,
      'ray.serve': /Ray Serve .*long-running job/,
      'ray.rllib': /RLlib .*ray\[rllib\]/,
      'ray.workflow': /Workflows .*ObjectRefs/,
      'ray.job_submission': /raysub job submit/,
      'ray.util.state': /raysub job status/,
      attribute: /Ray Data/,
      client: /Ray Client .*raysub job submit/,
    };
    for (const [name, text] of Object.entries(alternatives)) {
      const [cls, notImplemented, importError, message] = unsupported[name] ?? [];
      expect(cls, name).toBe('RaysubNotSupportedError');
      expect([notImplemented, importError], name).toEqual([true, true]);
      expect(message, name).toMatch(text);
    }
    const env = c.get('runtime_env') as Record<string, unknown>;
    expect(env.init).toEqual(['init', null]);
    expect(env.per_task).toEqual(['init', 'task']);
    for (const field of ['pip_missing', 'conda', 'other_dir']) expect((env[field] as unknown[])[0], field).toBe('RaysubNotSupportedError');
    expect(String((env.pip_missing as unknown[])[3])).toMatch(/--runtime-env-json/);
    // Calls queued behind one whose actor's process died wait for the restarted instance, and a
    // queued call that is cancelled never runs while those behind it do (docs/tasks.md; Ray 2.58
    // fails the calls behind a cancelled one with ActorUnavailableError).
    expect(c.get('restart_queue')).toEqual({ crash: 'ActorUnavailableError', behind: [true, true, true] });
    expect(c.get('cancel_queued')).toEqual({ slow: 'slow', steps: [0, 1, 'TaskCancelledError', 3, 4, 5], seen: [-1, 'slow', 0, 1, 3, 4, 5] });

    // A job whose runtime env installs `ray`, or puts one on its PYTHONPATH, gets that one.
    const probe = 'import ray; print("RAY:", getattr(ray, "WHICH", None), getattr(ray, "__raysub__", False)); print("done")';
    const dir = tempDir('raysub-ray-precedence-');
    fs.writeFileSync(path.join(dir, 'probe.py'), probe);
    fs.mkdirSync(path.join(dir, 'vendor', 'ray'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'vendor', 'ray', '__init__.py'), 'WHICH = "vendored ray"\n');
    const viaPip = await underRaysub(head, 'probe.py', ['--runtime-env-json', JSON.stringify({ pip: ['ray==9.9.9'] })], dir);
    expect(viaPip.stdout).toMatch(/^RAY: the job's own ray False$/m);
    const viaPath = await underRaysub(head, 'probe.py', ['--runtime-env-json', JSON.stringify({ env_vars: { PYTHONPATH: 'vendor' } })], dir);
    expect(viaPath.stdout).toMatch(/^RAY: vendored ray False$/m);
    const plain = await underRaysub(head, 'probe.py', [], dir);
    expect(plain.stdout).toMatch(/^RAY: None True$/m);
    // Opting out: no `ray` from raysub at all.
    const off = await runCli(['job', 'submit', '-q', '--working-dir', dir, '--entrypoint-num-cpus', '0', '--runtime-env-json', JSON.stringify({ env_vars: { RAYSUB_RAY_MODULE: '0' } }), '--', 'python3', 'probe.py'], {
      env: head.env,
      timeoutMs: 120_000,
    });
    expect(off.code).not.toBe(0);
    expect(off.stdout + off.stderr).toMatch(/ModuleNotFoundError: No module named 'ray' \(raysub's ray module is turned off by RAYSUB_RAY_MODULE=0\)/);
  }, 600_000);
});
