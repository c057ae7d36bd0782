// What the service benchmarks share (datapath/services.bench.ts, state/service-change.bench.ts):
// the generated service set, the kube-proxy iptables-mode rule set for it (the peer nrd is compared
// with), and the child processes spoken to one JSON line at a time (services-helper.ts).
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ServiceRecord } from '../../daemon/state/records.js';
import type { Cleanup } from '../../test/integration/datapath/env.js';

export const SVC_PORT = 80;
export const BACKEND_PORT = 8080;
export const POD_POOL = '10.244.0.0/16';

// ---- child processes ----------------------------------------------------------------------------

/** A helper child spoken to one JSON line at a time. */
export class LineProc {
  private readonly queue: string[] = [];
  private waiter: ((l: string) => void) | undefined;
  private stderr = '';

  constructor(private readonly proc: ChildProcess, readonly name: string) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const w = this.waiter;
      this.waiter = undefined;
      if (w) w(l);
      else this.queue.push(l);
    });
    proc.stderr!.on('data', (b: Buffer) => void (this.stderr = (this.stderr + b.toString()).slice(-2000)));
  }

  next<T>(ms = 300_000): Promise<T> {
    const parse = (l: string): T => {
      const v = JSON.parse(l) as T & { error?: string };
      if (typeof v === 'object' && v !== null && typeof v.error === 'string') throw new Error(`${this.name}: ${v.error}`);
      return v;
    };
    const l = this.queue.shift();
    if (l !== undefined) return Promise.resolve(parse(l));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no reply in ${ms} ms; stderr: ${this.stderr}`)), ms);
      this.waiter = (line) => {
        clearTimeout(t);
        try {
          resolve(parse(line));
        } catch (e) {
          reject(e as Error);
        }
      };
    });
  }

  ask<T>(cmd: unknown, ms?: number): Promise<T> {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
    return this.next<T>(ms);
  }
}

const HELPER = fileURLToPath(new URL('./services-helper.js', import.meta.url));

/** services-helper.js in `mode` inside ns, killed by its own pid at cleanup (and listed in `children`). */
export function serviceHelper(cleanup: Cleanup, children: ChildProcess[], ns: string, mode: string, extra: string[] = []): LineProc {
  // `ip netns exec` execs node in place: the pid is node's.
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, HELPER, mode, ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(p);
  cleanup.add(() => void p.kill('SIGKILL'));
  return new LineProc(p, `${mode}@${ns}`);
}

/** A timed iptables-restore (--noflush or not) of `rules` by a `restore` helper, through a file in `work`. */
export function restorer(helper: LineProc, work: string): (rules: string, noflush: boolean) => Promise<number> {
  let fileSeq = 0;
  return async (rules, noflush) => {
    const file = join(work, `rules-${fileSeq++}`);
    writeFileSync(file, rules);
    try {
      return (await helper.ask<{ ms: number }>({ file, noflush }, 900_000)).ms;
    } finally {
      rmSync(file, { force: true });
    }
  };
}

/** Runs `main`, then kills the children and runs the cleanup, also on SIGINT / SIGTERM. */
export async function runBench(main: () => Promise<void>, cleanup: Cleanup, children: ChildProcess[]): Promise<void> {
  const onSignal = (): void => {
    for (const c of children) c.kill('SIGKILL');
    try {
      cleanup.run();
    } finally {
      process.exit(130);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await main();
  } finally {
    for (const c of children) c.kill('SIGKILL');
    // A killed agent leaves pins and attached programs; both go with the namespaces and the bpffs.
    await new Promise((r) => setTimeout(r, 200));
    cleanup.run();
  }
}

/** `--name value` from the command line, or `dflt`. */
export function cliArg(name: string, dflt: string): string {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---- the service set ----------------------------------------------------------------------------

const vip = (i: number): string => `10.96.${(i + 1) >> 8}.${(i + 1) & 255}`;
const fakeIp = (k: number): string => `10.${245 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;

/** Service i: 2–4 unreachable backends, or `real` ones. */
function service(i: number, real?: readonly string[]): ServiceRecord {
  const backends = real ?? Array.from({ length: 2 + (i % 3) }, (_, j) => fakeIp(i * 4 + j + 1));
  return { name: `svc-${String(i).padStart(5, '0')}`, vip: vip(i), port: SVC_PORT, protocol: 'tcp', backends: backends.map((b) => ({ ip: b, port: BACKEND_PORT })) };
}

/** `size` services, the last one (the most recently added) on the `real` backends when given. */
export function services(size: number, real?: readonly string[]): ServiceRecord[] {
  const out: ServiceRecord[] = [];
  for (let i = 0; i < size; i++) out.push(service(i, i === size - 1 ? real : undefined));
  return out;
}

let extraSeq = 0;
/**
 * A new service for one add/remove measurement, never used before: nrd keeps a removed service's
 * backends draining for drainSeconds, and re-adding the same backends within that time leaves
 * them draining (no slots written), which would measure a different change.
 */
export function freshService(): ServiceRecord {
  const k = 60_000 + 4 * extraSeq++;
  return {
    name: `svc-new-${extraSeq}`, vip: `10.97.${k >> 8 & 255}.${k & 255}`, port: SVC_PORT, protocol: 'tcp',
    backends: [1, 2, 3].map((j) => ({ ip: fakeIp(k + j), port: BACKEND_PORT })),
  };
}

// ---- kube-proxy's iptables rules ----------------------------------------------------------------

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** kube-proxy's chain suffix: base32(sha256(text)) cut to 16 characters. */
function hash16(text: string): string {
  const d = createHash('sha256').update(text).digest();
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const byte of d) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 16) {
      out += B32[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
    if (out.length >= 16) break;
  }
  return out;
}

const portName = (s: ServiceRecord): string => `default/${s.name}:http`;
const svcChain = (s: ServiceRecord): string => `KUBE-SVC-${hash16(portName(s) + 'tcp')}`;
const sepChain = (s: ServiceRecord, b: { ip: string; port: number }): string => `KUBE-SEP-${hash16(portName(s) + 'tcp' + `${b.ip}:${b.port}`)}`;

/**
 * The iptables-restore input of kube-proxy's full sync (iptables mode) for the set: every chain it
 * owns declared (which flushes it under --noflush), every rule written again, stale chains deleted.
 */
export function kubeProxyRules(set: readonly ServiceRecord[], stale: readonly ServiceRecord[], jumps: boolean): string {
  const f: string[] = ['*filter', ':KUBE-SERVICES - [0:0]', ':KUBE-EXTERNAL-SERVICES - [0:0]', ':KUBE-FORWARD - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-PROXY-FIREWALL - [0:0]',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT'];
  // The jumps from the built-in chains kube-proxy inserts once, outside its restore input; here
  // only in the (flushing) install restore, which would drop them otherwise.
  const builtin = jumps ? [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  ] : [];
  const chains: string[] = [':KUBE-SERVICES - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODEPORTS - [0:0]'];
  const rules: string[] = [
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
  ];
  const svcRules: string[] = [];
  for (const s of set) {
    const sc = svcChain(s);
    const c = `-m comment --comment "${portName(s)} cluster IP"`;
    chains.push(`:${sc} - [0:0]`);
    svcRules.push(`-A KUBE-SERVICES -d ${s.vip}/32 -p tcp ${c} -m tcp --dport ${s.port} -j ${sc}`);
    rules.push(`-A ${sc} ! -s ${POD_POOL} -d ${s.vip}/32 -p tcp ${c} -m tcp --dport ${s.port} -j KUBE-MARK-MASQ`);
    const n = s.backends.length;
    s.backends.forEach((b, i) => {
      const ep = sepChain(s, b);
      const cc = `-m comment --comment "${portName(s)} -> ${b.ip}:${b.port}"`;
      chains.push(`:${ep} - [0:0]`);
      rules.push(i < n - 1
        ? `-A ${sc} ${cc} -m statistic --mode random --probability ${(1 / (n - i)).toFixed(10)} -j ${ep}`
        : `-A ${sc} ${cc} -j ${ep}`);
      rules.push(`-A ${ep} -s ${b.ip}/32 -m comment --comment "${portName(s)}" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${ep} -p tcp -m comment --comment "${portName(s)}" -m tcp -j DNAT --to-destination ${b.ip}:${b.port}`);
    });
  }
  svcRules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  const gone: string[] = [];
  for (const s of stale) {
    chains.push(`:${svcChain(s)} - [0:0]`);
    gone.push(`-X ${svcChain(s)}`);
    for (const b of s.backends) {
      chains.push(`:${sepChain(s, b)} - [0:0]`);
      gone.push(`-X ${sepChain(s, b)}`);
    }
  }
  const fwd = jumps ? ['-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'] : [];
  return [...f.slice(0, -1), ...fwd, 'COMMIT', '*nat', ...chains, ...builtin, ...svcRules, ...rules, ...gone, 'COMMIT', ''].join('\n');
}
