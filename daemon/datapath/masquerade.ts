// Masquerade (RFC 3022 NAPT of pod IPv4 and IPv6 to the node's addresses) outside the BPF
// programs: the choice of the source-port range, the conntrack GC of the nrd_nat4 and nrd_nat6
// maps (which BPF only ever inserts into), and the nftables fallback used where nrd_netdev cannot load or attach: one table,
// `table inet nrd`, created, replaced and deleted as a whole with `nft -f` (one netlink
// transaction each), never touching another table.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NrdError } from '../lib/errors.js';
import { type NatEntry, type NatKey, CtState, NatDir } from './endpoint-layout.js';

export type MasqueradeMode = 'bpf' | 'nftables' | 'off';

// ---- port range ---------------------------------------------------------------------------------

/** Fewest ports nrd accepts for masquerade: below that, flows to one destination collide. */
export const MIN_NAT_PORTS = 1024;

export function parseLocalPortRange(text: string): [number, number] {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!m) throw new NrdError('invalid', 'bad_port_range', `ip_local_port_range: cannot parse ${JSON.stringify(text)}`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) throw new NrdError('invalid', 'bad_port_range', `ip_local_port_range: ${lo}-${hi} is not a range`);
  return [lo, hi];
}

/** net.ipv4.ip_local_port_range of the calling thread's network namespace. */
export function readLocalPortRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): [number, number] {
  return parseLocalPortRange(readFileSync(path, 'utf8'));
}

/**
 * The masquerade source ports: a range clear of the host's own ephemeral ports, since replies to
 * both arrive on the node address and a port in both would steal the host's replies. Above the
 * host range when that leaves MIN_NAT_PORTS (Linux's default 32768-60999 gives 61000-65535),
 * else the larger of the gaps above and below it (never below 1024, where services listen).
 */
export function choosePortRange(local: readonly [number, number]): { min: number; max: number } {
  const [lo, hi] = local;
  const above = { min: hi + 1, max: 65535 };
  const below = { min: 1024, max: lo - 1 };
  const size = (r: { min: number; max: number }): number => Math.max(0, r.max - r.min + 1);
  if (size(above) >= MIN_NAT_PORTS) return above;
  const best = size(above) >= size(below) ? above : below;
  if (size(best) < MIN_NAT_PORTS) {
    throw new NrdError('invalid', 'no_masquerade_ports',
      `ip_local_port_range ${lo}-${hi} leaves fewer than ${MIN_NAT_PORTS} ports for masquerade; narrow it (e.g. 32768 60999)`);
  }
  return best;
}

// ---- conntrack GC of nrd_nat4 / nrd_nat6 (one map at a time: a flow never spans both) -----------------------------------------------------------------

/** Idle timeouts in seconds by state (what nrd_dp_shared.h suggests; Linux's are similar). */
export const CT_TIMEOUTS = {
  syn: 60,
  tcpEstablished: 7200,
  udpEstablished: 60,
  icmpEstablished: 30,
  fin: 30,
  closed: 10,
} as const;

const NS = 1_000_000_000n;

export function ctTimeoutNs(state: number, proto: number): bigint {
  switch (state) {
    case CtState.EST:
      return BigInt(proto === 6 ? CT_TIMEOUTS.tcpEstablished : proto === 17 ? CT_TIMEOUTS.udpEstablished : CT_TIMEOUTS.icmpEstablished) * NS;
    case CtState.FIN:
      return BigInt(CT_TIMEOUTS.fin) * NS;
    case CtState.CLOSED:
      return BigInt(CT_TIMEOUTS.closed) * NS;
    default:
      return BigInt(CT_TIMEOUTS.syn) * NS;
  }
}

const natKeyText = (k: NatKey): string =>
  `${k.saddr.toString('hex')}/${k.daddr.toString('hex')}/${k.sport}/${k.dport}/${k.proto}/${k.dir}`;

/** The REPLY key of an OUT entry (nrd_nat4_reply_key in nrd_nat.h). */
export function replyKey(k: NatKey, v: NatEntry): NatKey {
  return { saddr: k.daddr, daddr: v.addr, sport: k.dport, dport: v.port, proto: k.proto, dir: NatDir.REPLY };
}

/**
 * Which nrd_nat4 entries to delete at time now (CLOCK_MONOTONIC ns, the clock of
 * bpf_ktime_get_ns): a flow whose newest packet in either direction is older than its state's
 * timeout loses both entries; a REPLY entry without its OUT entry (the LRU evicted it) goes once
 * idle for the longest timeout. Both entries go together, so a port is never half-free.
 */
export function planNatGc(entries: ReadonlyArray<readonly [NatKey, NatEntry]>, now: bigint): { delete: NatKey[]; flows: number } {
  const byKey = new Map<string, NatEntry>();
  for (const [k, v] of entries) byKey.set(natKeyText(k), v);
  const out: NatKey[] = [];
  const pairedReplies = new Set<string>();
  let flows = 0;
  for (const [k, v] of entries) {
    if (k.dir !== NatDir.OUT) continue;
    const rk = replyKey(k, v);
    const rText = natKeyText(rk);
    const r = byKey.get(rText);
    if (r) pairedReplies.add(rText);
    const last = r && r.lastSeenNs > v.lastSeenNs ? r.lastSeenNs : v.lastSeenNs;
    if (now - last > ctTimeoutNs(v.state, k.proto)) {
      out.push(k);
      if (r) out.push(rk);
      flows++;
    }
  }
  const longest = BigInt(CT_TIMEOUTS.tcpEstablished) * NS;
  for (const [k, v] of entries) {
    if (k.dir === NatDir.REPLY && !pairedReplies.has(natKeyText(k)) && now - v.lastSeenNs > longest) out.push(k);
  }
  return { delete: out, flows };
}

// ---- nftables fallback ------------------------------------------------------------------------

export const NFT_TABLE = 'nrd';

export interface NftMasqueradeSpec {
  /** IPv4 cluster pools: the sources masqueraded, and destinations that keep their source. */
  pools4: readonly string[];
  /** Further IPv4 destinations reached without masquerade (datapath.masqueradeExclude). */
  exclude4: readonly string[];
  /** The same for IPv6 (absent: none). */
  pools6?: readonly string[];
  exclude6?: readonly string[];
}

/**
 * The whole nrd table as one `nft -f` script. Starts by creating then deleting the table, so
 * the script replaces it atomically whether or not it existed (one transaction: no moment
 * without the rule). IPv4 and IPv6 alike: nftables' masquerade picks the outgoing interface's
 * address of the packet's family, the node address the BPF side writes.
 */
export function nftRuleset(spec: NftMasqueradeSpec): string {
  const elems = (xs: readonly string[]): string => (xs.length ? `\t\telements = { ${xs.join(', ')} }\n` : '');
  const sets = (fam: '4' | '6', pools: readonly string[], exclude: readonly string[]): string => {
    const type = fam === '4' ? 'ipv4_addr' : 'ipv6_addr';
    const nonat = [...new Set([...pools, ...exclude])];
    return `\tset pools${fam} {\n\t\ttype ${type}\n\t\tflags interval\n${elems(pools)}\t}\n` +
      `\tset nonat${fam} {\n\t\ttype ${type}\n\t\tflags interval\n\t\tauto-merge\n${elems(nonat)}\t}\n`;
  };
  const pools6 = spec.pools6 ?? [];
  const rules = (spec.pools4.length ? '\t\tip saddr @pools4 ip daddr != @nonat4 masquerade\n' : '') +
    (pools6.length ? '\t\tip6 saddr @pools6 ip6 daddr != @nonat6 masquerade\n' : '');
  return (
    `table inet ${NFT_TABLE}\n` +
    `delete table inet ${NFT_TABLE}\n` +
    `table inet ${NFT_TABLE} {\n` +
    sets('4', spec.pools4, spec.exclude4) +
    sets('6', pools6, spec.exclude6 ?? []) +
    `\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n${rules}\t}\n` +
    `}\n`
  );
}

/** The script that removes the nrd table, and succeeds when there is none. */
export function nftDeleteScript(): string {
  return `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
}

/** Runs an nft script from stdin (`nft -f -`); rejects with nft's message. */
export function runNft(script: string, nft = 'nft'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(nft, ['-f', '-'], { encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err) reject(new NrdError('unavailable', 'nft_failed', `nft -f: ${String(stderr).trim().replace(/\s+/g, ' ') || err.message}`));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

/** Whether `table inet nrd` exists (nft list fails when it does not). */
export function nftTableExists(nft = 'nft'): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(nft, ['list', 'table', 'inet', NFT_TABLE], (err) => resolve(!err));
  });
}
