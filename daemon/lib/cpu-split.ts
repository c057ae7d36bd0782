// The BFD thread and the route writer thread never share a CPU. On a kernel without preemption
// (PREEMPT_NONE, "Dynamic Preempt: none") a thread inside a system call keeps its CPU until the call
// returns or reaches a reschedule point, whatever the priority of the thread woken there: a
// SCHED_RR BFD thread woken on the CPU where the route writer is inside sendmsg waits for it (the
// real-time scheduler only places a woken task elsewhere when a real-time task holds the CPU).
// Datagrams are small (kernel/channel.ts WRITE_DATAGRAM_MAX), but one route insert or delete that
// makes the kernel's fib trie inflate or halve a large node costs up to ~200 ms at 1M routes, more
// than a 50 ms × 3 detection time. So with two CPUs or more the BFD thread runs on the last CPU
// the process may use and the route writer on the others; with one CPU nothing changes.
import { setThreadAffinity, threadAffinity } from './libc.js';

export type CpuRole = 'bfd' | 'route-writer';

/** The CPUs of `role` among `allowed` (ascending), or null: leave the thread where it is. */
export function cpusFor(role: CpuRole, allowed: readonly number[]): number[] | null {
  if (allowed.length < 2) return null;
  const last = allowed[allowed.length - 1]!;
  return role === 'bfd' ? [last] : allowed.slice(0, -1);
}

/**
 * Pins the calling thread to the CPUs of `role` (see the header comment); returns them, or null
 * when it stays where it was (one CPU). Throws a LibcError when the kernel refuses.
 */
export function pinThread(role: CpuRole): number[] | null {
  const allowed = threadAffinity();
  const cpus = cpusFor(role, allowed);
  if (cpus) setThreadAffinity(cpus);
  return cpus;
}
