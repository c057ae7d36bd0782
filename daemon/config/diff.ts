// Leaf-level difference between two loaded configs, for SIGHUP: the daemon applies and logs only
// what changed. Peers are matched by address, so reordering bgp.peers changes nothing and a change
// to one peer names that peer alone (a reload must not flap the sessions it does not concern).
import type { BgpPeerConfig, ConfigChange, NrdConfig } from './types.js';
import { REDACTED } from './redact.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && equal(a[k], b[k]));
  }
  return false;
}

// etcd.password and bgp.peers[].password: the only secrets of the schema.
const hide = (leafName: string, v: unknown): unknown => (leafName === 'password' && v !== '' && v !== null ? REDACTED : v);
const hidePeer = (p: BgpPeerConfig): BgpPeerConfig => ({ ...p, password: hide('password', p.password) as string });

function walk(a: unknown, b: unknown, key: string, leafName: string, out: ConfigChange[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !Object.prototype.hasOwnProperty.call(a, k))];
    for (const k of keys) walk(a[k], b[k], key ? `${key}.${k}` : k, k, out);
    return;
  }
  if (!equal(a, b)) out.push({ key, from: hide(leafName, a ?? null), to: hide(leafName, b ?? null) });
}

/**
 * Changes from `before` to `after`, one per leaf, e.g. {key: "log.level", from: "info", to: "debug"}.
 * Peers are keyed by address: "bgp.peers[192.0.2.1].holdTime"; an added peer is
 * {key: "bgp.peers[192.0.2.9]", from: null, to: <peer>}, a removed one the reverse. Other lists
 * compare whole. Passwords show as "(redacted)" (the diff is meant to be logged).
 */
export function diffConfig(before: NrdConfig, after: NrdConfig): ConfigChange[] {
  const out: ConfigChange[] = [];
  const { peers: pa, ...bgpA } = before.bgp;
  const { peers: pb, ...bgpB } = after.bgp;
  walk({ ...before, bgp: bgpA }, { ...after, bgp: bgpB }, '', '', out);
  const byAddr = new Map(pb.map((p) => [p.address, p]));
  const oldAddrs = new Set(pa.map((p) => p.address));
  for (const p of pa) {
    const q = byAddr.get(p.address);
    const key = `bgp.peers[${p.address}]`;
    if (!q) out.push({ key, from: hidePeer(p), to: null });
    else walk(p, q, key, '', out);
  }
  for (const q of pb) {
    if (!oldAddrs.has(q.address)) out.push({ key: `bgp.peers[${q.address}]`, from: null, to: hidePeer(q) });
  }
  return out;
}
