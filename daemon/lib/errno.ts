// errno numbers ↔ symbolic names, one table for every OS port (libc, libbpf, netlink): several
// names share a number (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP); the first Node lists, the POSIX
// spelling callers test for, wins, so 95 is always 'ENOTSUP' and 11 always 'EAGAIN'.
import { constants as osConstants } from 'node:os';

const names = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) if (!names.has(value)) names.set(value, name);

/** errno number → symbolic code ('EEXIST'); 'E<n>' for numbers Node does not name. */
export function errnoName(errno: number): string {
  return names.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** Symbolic code → errno number; undefined for a name Node does not know. */
export function errnoNumber(name: string): number | undefined {
  return (osConstants.errno as Record<string, number>)[name];
}
