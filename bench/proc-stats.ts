/**
 * What a benchmark reads about a server from Linux /proc: the CPU of its whole process tree,
 * its RSS, and its git children.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** CPU time of a process tree so far, in ms: the process itself, and everything under it. */
export interface TreeCpu {
  /** utime + stime of the root process (all its threads). */
  selfMs: number;
  /**
   * Its children's: cutime + cstime of the root (children it reaped, with what they reaped)
   * plus utime + stime + cutime + cstime of every descendant still alive.
   */
  childrenMs: number;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks. */
  ownTicks: number;
  /** cutime + cstime, in clock ticks. */
  reapedTicks: number;
}

let ticksPerSecond: number | undefined;

/** USER_HZ (100 on every common Linux), asked once. */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** /proc/<pid>/stat; undefined when the process is gone. Fields are counted after the `(comm)`. */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  return {
    pid,
    ppid: field(4),
    ownTicks: field(14) + field(15),
    reapedTicks: field(16) + field(17),
  };
}

let checked = false;

/** Without CONFIG_PROC_CHILDREN a process seems childless: its children's CPU would be lost. */
function requireChildrenFiles(): void {
  if (checked) return;
  if (!existsSync(`/proc/${process.pid}/task/${process.pid}/children`)) {
    throw new Error('this kernel has no /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)');
  }
  checked = true;
}

/**
 * The children of `pid`, from /proc/<pid>/task/<tid>/children (each thread's own): a few small
 * reads instead of a scan of /proc, which takes long with hundreds of git clients running.
 * Empty when the process is gone.
 */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const tid of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text !== '') children.push(...text.split(' ').map(Number));
    } catch {
      // the thread ended while we looked
    }
  }
  return children;
}

/** Every process alive under `root` (not `root` itself). */
function descendants(root: number): ProcStat[] {
  const found: ProcStat[] = [];
  const pending = childrenOf(root);
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    const stat = readStat(pid);
    if (!stat) continue;
    found.push(stat);
    pending.push(...childrenOf(pid));
  }
  return found;
}

/**
 * CPU of `pid` and everything it started so far. A process reaped by its parent counts in the
 * parent's cutime/cstime (Node reaps its children, git upload-pack its pack-objects), one still
 * running in its own utime/stime: each CPU tick is counted once. Undefined when `pid` is gone.
 */
export function treeCpu(pid: number): TreeCpu | undefined {
  requireChildrenFiles();
  const root = readStat(pid);
  if (!root) return undefined;
  let childTicks = root.reapedTicks;
  for (const child of descendants(pid)) childTicks += child.ownTicks + child.reapedTicks;
  const ms = 1000 / clockTicks();
  return { selfMs: root.ownTicks * ms, childrenMs: childTicks * ms };
}

/** CPU used between two readings of treeCpu. */
export function cpuBetween(before: TreeCpu, after: TreeCpu): TreeCpu {
  return { selfMs: after.selfMs - before.selfMs, childrenMs: after.childrenMs - before.childrenMs };
}

/** RSS of one process in MiB (NaN when unknown), and how many of its children are `git upload-pack`. */
export function memoryAndGit(pid: number): { rssMiB: number; uploadPacks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  let uploadPacks = 0;
  for (const child of childrenOf(pid)) {
    try {
      if (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('upload-pack')) uploadPacks++;
    } catch {
      // the process ended while we looked
    }
  }
  return { rssMiB: rssKiB / 1024, uploadPacks };
}

/** Samples a server's peak RSS and peak upload-pack count every `intervalMs` until stopped. */
export function startPeakSampler(
  pid: number,
  intervalMs = 100,
): { stop(): { rssMiB: number; uploadPacks: number } } {
  const peak = { rssMiB: 0, uploadPacks: 0 };
  const timer = setInterval(() => {
    try {
      const now = memoryAndGit(pid);
      peak.rssMiB = Math.max(peak.rssMiB, now.rssMiB);
      peak.uploadPacks = Math.max(peak.uploadPacks, now.uploadPacks);
    } catch {
      // the server is gone: the errors of its clients say so
    }
  }, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
