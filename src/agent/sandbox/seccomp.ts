/**
 * The sandbox's seccomp filter: one list of rules compiled to a classic BPF program, installed by
 * raysub-init right before it execs the worker (or handed to bubblewrap's `--seccomp FD` where
 * raysub-init was not built). It refuses, with EPERM, the system calls container runtimes refuse
 * by default — the kernel's keyrings, namespaces and mounts, attaching to other processes,
 * loading kernels, modules and BPF programs, perf events, userfaultfd, io_uring, and more of
 * Docker's default deny list (clocks, swap, reboot, quotas, I/O ports). Two groups:
 *  - "default": the node's deny list (`--no-sandbox-seccomp` leaves it out);
 *  - "namespaces": new namespaces (user namespaces above all) and mounts, left out only for a job
 *    that asks for them (`runtime_env.sandbox.user_namespaces`).
 * A call from a foreign architecture (a 32-bit program on a 64-bit kernel) kills the process:
 * its numbers mean other calls.
 */

export type SeccompArch = 'x64' | 'arm64';
export type RuleGroup = 'default' | 'namespaces';

interface Rule {
  name: string;
  /** The call's number on each architecture (absent: no such call there). */
  nr: Partial<Record<SeccompArch, number>>;
  group: RuleGroup;
  /** Refused with ENOSYS instead of EPERM: the C library then falls back to an older call it checks. */
  enosys?: true;
  /** Refused only when its first argument is one of these values... */
  arg0In?: readonly number[];
  /** ...or has one of these bits set. */
  arg0Bits?: number;
}

const same = (n: number): Record<SeccompArch, number> => ({ x64: n, arm64: n });

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
const CLONE_NEW_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
const PTRACE_ATTACH = 16;
const PTRACE_SEIZE = 0x4206;

export const SECCOMP_RULES: readonly Rule[] = [
  // the kernel's keyrings: outlive a task under its uid (docs/security.md)
  { name: 'add_key', nr: { x64: 248, arm64: 217 }, group: 'default' },
  { name: 'request_key', nr: { x64: 249, arm64: 218 }, group: 'default' },
  { name: 'keyctl', nr: { x64: 250, arm64: 219 }, group: 'default' },
  // other processes' memory and files; a debugger may still trace the children it starts (PTRACE_TRACEME)
  { name: 'ptrace', nr: { x64: 101, arm64: 117 }, group: 'default', arg0In: [PTRACE_ATTACH, PTRACE_SEIZE] },
  { name: 'process_vm_readv', nr: { x64: 310, arm64: 270 }, group: 'default' },
  { name: 'process_vm_writev', nr: { x64: 311, arm64: 271 }, group: 'default' },
  { name: 'kcmp', nr: { x64: 312, arm64: 272 }, group: 'default' },
  { name: 'pidfd_getfd', nr: same(438), group: 'default' },
  // the kernel itself
  { name: 'kexec_load', nr: { x64: 246, arm64: 104 }, group: 'default' },
  { name: 'kexec_file_load', nr: { x64: 320, arm64: 294 }, group: 'default' },
  { name: 'init_module', nr: { x64: 175, arm64: 105 }, group: 'default' },
  { name: 'finit_module', nr: { x64: 313, arm64: 273 }, group: 'default' },
  { name: 'delete_module', nr: { x64: 176, arm64: 106 }, group: 'default' },
  { name: 'create_module', nr: { x64: 174 }, group: 'default' },
  { name: 'get_kernel_syms', nr: { x64: 177 }, group: 'default' },
  { name: 'query_module', nr: { x64: 178 }, group: 'default' },
  { name: 'bpf', nr: { x64: 321, arm64: 280 }, group: 'default' },
  { name: 'perf_event_open', nr: { x64: 298, arm64: 241 }, group: 'default' },
  { name: 'userfaultfd', nr: { x64: 323, arm64: 282 }, group: 'default' },
  { name: 'io_uring_setup', nr: same(425), group: 'default' },
  { name: 'io_uring_enter', nr: same(426), group: 'default' },
  { name: 'io_uring_register', nr: same(427), group: 'default' },
  { name: 'lookup_dcookie', nr: { x64: 212, arm64: 18 }, group: 'default' },
  { name: 'open_by_handle_at', nr: { x64: 304, arm64: 265 }, group: 'default' },
  { name: 'name_to_handle_at', nr: { x64: 303, arm64: 264 }, group: 'default' },
  { name: 'syslog', nr: { x64: 103, arm64: 116 }, group: 'default' },
  // the machine: clocks, swap, accounting, quotas, reboot, ports
  { name: 'settimeofday', nr: { x64: 164, arm64: 170 }, group: 'default' },
  { name: 'clock_settime', nr: { x64: 227, arm64: 112 }, group: 'default' },
  { name: 'clock_adjtime', nr: { x64: 305, arm64: 266 }, group: 'default' },
  { name: 'acct', nr: { x64: 163, arm64: 89 }, group: 'default' },
  { name: 'swapon', nr: { x64: 167, arm64: 224 }, group: 'default' },
  { name: 'swapoff', nr: { x64: 168, arm64: 225 }, group: 'default' },
  { name: 'reboot', nr: { x64: 169, arm64: 142 }, group: 'default' },
  { name: 'quotactl', nr: { x64: 179, arm64: 60 }, group: 'default' },
  { name: 'quotactl_fd', nr: same(443), group: 'default' },
  { name: 'nfsservctl', nr: { x64: 180, arm64: 42 }, group: 'default' },
  { name: 'vhangup', nr: { x64: 153, arm64: 58 }, group: 'default' },
  { name: 'uselib', nr: { x64: 134 }, group: 'default' },
  { name: 'ustat', nr: { x64: 136 }, group: 'default' },
  { name: 'sysfs', nr: { x64: 139 }, group: 'default' },
  { name: '_sysctl', nr: { x64: 156 }, group: 'default' },
  { name: 'iopl', nr: { x64: 172 }, group: 'default' },
  { name: 'ioperm', nr: { x64: 173 }, group: 'default' },
  // namespaces and mounts
  { name: 'unshare', nr: { x64: 272, arm64: 97 }, group: 'namespaces' },
  { name: 'setns', nr: { x64: 308, arm64: 268 }, group: 'namespaces' },
  { name: 'clone', nr: { x64: 56, arm64: 220 }, group: 'namespaces', arg0Bits: CLONE_NEW_NAMESPACES },
  // clone3's flags are in memory a filter cannot read: ENOSYS makes the C library use clone
  { name: 'clone3', nr: same(435), group: 'namespaces', enosys: true },
  { name: 'mount', nr: { x64: 165, arm64: 40 }, group: 'namespaces' },
  { name: 'umount2', nr: { x64: 166, arm64: 39 }, group: 'namespaces' },
  { name: 'pivot_root', nr: { x64: 155, arm64: 41 }, group: 'namespaces' },
  { name: 'open_tree', nr: same(428), group: 'namespaces' },
  { name: 'move_mount', nr: same(429), group: 'namespaces' },
  { name: 'fsopen', nr: same(430), group: 'namespaces' },
  { name: 'fsconfig', nr: same(431), group: 'namespaces' },
  { name: 'fsmount', nr: same(432), group: 'namespaces' },
  { name: 'fspick', nr: same(433), group: 'namespaces' },
  { name: 'mount_setattr', nr: same(442), group: 'namespaces' },
];

const AUDIT_ARCH: Record<SeccompArch, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };
/** x86-64's x32 ABI: the same numbers with this bit set. */
const X32_SYSCALL_BIT = 0x40000000;

// Classic BPF (linux/filter.h, linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
/** struct seccomp_data: nr, arch, then the instruction pointer and six 64-bit arguments (little-endian). */
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG0_LOW = 16;

type Target = 'allow' | 'eperm' | 'enosys' | 'kill';
/** A conditional jump goes to a return (a Target) or skips `n` instructions; none: falls through. */
type Jump = Target | { skip: number } | undefined;
interface Insn {
  code: number;
  k: number;
  jt?: Jump;
  jf?: Jump;
}

const RETURNS: Record<Target, number> = { allow: RET_ALLOW, eperm: RET_ERRNO | EPERM, enosys: RET_ERRNO | ENOSYS, kill: RET_KILL_PROCESS };

/** The architecture of this process, if the filter knows its numbers. */
export function seccompArch(arch: string = process.arch): SeccompArch | null {
  return arch === 'x64' || arch === 'arm64' ? arch : null;
}

/** Lay out `body`, then one return per target; resolve jumps to offsets (classic BPF jumps forward, at most 255). */
function assemble(body: readonly Insn[]): Buffer {
  const targets = Object.keys(RETURNS) as Target[];
  const at = (t: Target): number => body.length + targets.indexOf(t);
  const out = Buffer.alloc((body.length + targets.length) * 8);
  const offset = (i: number, j: Jump): number => {
    if (j === undefined) return 0;
    const off = typeof j === 'object' ? j.skip : at(j) - (i + 1);
    if (off < 0 || off > 255) throw new Error(`seccomp: jump of ${off} at instruction ${i}`);
    return off;
  };
  const put = (i: number, insn: Insn): void => {
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(offset(i, insn.jt), i * 8 + 2);
    out.writeUInt8(offset(i, insn.jf), i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  };
  body.forEach((insn, i) => put(i, insn));
  targets.forEach((t, n) => put(body.length + n, { code: RET_K, k: RETURNS[t] }));
  return out;
}

/**
 * The filter for `groups` on `arch`, as the bytes of a `struct sock_filter` array (what
 * raysub-init installs and bwrap's --seccomp reads); null when no rule applies.
 */
export function seccompProgram(groups: ReadonlySet<RuleGroup>, arch: SeccompArch): Buffer | null {
  const rules = SECCOMP_RULES.filter((r) => groups.has(r.group) && r.nr[arch] !== undefined);
  if (rules.length === 0) return null;
  const body: Insn[] = [
    { code: LD_W_ABS, k: OFF_ARCH },
    { code: JEQ_K, k: AUDIT_ARCH[arch], jf: 'kill' },
    { code: LD_W_ABS, k: OFF_NR },
  ];
  if (arch === 'x64') body.push({ code: JGE_K, k: X32_SYSCALL_BIT, jt: 'kill' });
  for (const r of rules) {
    const deny: Target = r.enosys ? 'enosys' : 'eperm';
    const nr = r.nr[arch] ?? -1;
    if (r.arg0In === undefined && r.arg0Bits === undefined) {
      body.push({ code: JEQ_K, k: nr, jt: deny });
      continue;
    }
    // This call: decided on the low 32 bits of its first argument, then allowed.
    const checks: Insn[] = (r.arg0In ?? []).map((v) => ({ code: JEQ_K, k: v, jt: deny }));
    if (r.arg0Bits !== undefined) checks.push({ code: JSET_K, k: r.arg0Bits, jt: deny });
    body.push({ code: JEQ_K, k: nr, jf: { skip: checks.length + 2 } }, { code: LD_W_ABS, k: OFF_ARG0_LOW }, ...checks, { code: RET_K, k: RET_ALLOW });
  }
  return assemble(body);
}

/** The node's choice: null where the filter does not know this machine's architecture. */
export interface SeccompSettings {
  arch: SeccompArch;
  /** The "default" group (false with --no-sandbox-seccomp). */
  denyList: boolean;
}

const programs = new Map<string, Buffer | null>();

/**
 * One task's filter: the node's deny list (unless the operator turned it off) and, unless the
 * job asked for user namespaces, no new namespaces or mounts. Compiled once per combination.
 */
export function taskSeccomp(s: SeccompSettings | null, userNamespaces: boolean): Buffer | null {
  if (!s) return null;
  const groups = new Set<RuleGroup>();
  if (s.denyList) groups.add('default');
  if (!userNamespaces) groups.add('namespaces');
  const key = `${s.arch}:${[...groups].join(',')}`;
  if (!programs.has(key)) programs.set(key, seccompProgram(groups, s.arch));
  return programs.get(key) ?? null;
}

/** One line for the agent's sandbox description. */
export function describeSeccomp(s: SeccompSettings | null): string {
  if (!s) return `no seccomp filter (no system call table for ${process.arch})`;
  return s.denyList ? 'seccomp: default deny list, no new namespaces' : 'seccomp deny list off (--no-sandbox-seccomp); no new namespaces';
}
