// Sysctls of the current network namespace through /proc/sys (sysctl(8) key syntax). Keys name
// the path with dots, or with slashes when a component (an interface name) itself contains dots:
// 'net.ipv4.ip_forward', 'net/ipv4/conf/nrd.vx/rp_filter'.
import { readFile, writeFile } from 'node:fs/promises';
import { KernelError } from './types.js';

const KEY_RE = /^[A-Za-z0-9_.\-/]+$/;

export function sysctlPath(key: string): string {
  if (!KEY_RE.test(key) || key.includes('..') || key.startsWith('/')) throw new Error(`invalid sysctl key ${JSON.stringify(key)}`);
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

function wrap(err: unknown, call: string, key: string): KernelError {
  const e = err as NodeJS.ErrnoException;
  return new KernelError(e.code ?? 'EIO', Math.abs(e.errno ?? 5), call, key);
}

export async function readSysctl(key: string): Promise<string> {
  try {
    return (await readFile(sysctlPath(key), 'utf8')).trim();
  } catch (e) {
    throw wrap(e, 'readSysctl', key);
  }
}

export async function writeSysctl(key: string, value: string | number): Promise<void> {
  try {
    await writeFile(sysctlPath(key), `${value}\n`);
  } catch (e) {
    throw wrap(e, 'writeSysctl', key);
  }
}
