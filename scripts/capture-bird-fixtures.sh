#!/usr/bin/env bash
# Captures real BIRD 2 BGP messages as codec fixtures (RFC 4271 messages on the wire, pcap via tcpdump).
# Two namespaces of its own, two BIRD instances: session "ipv4-ipv6" (IPv4 transport, IPv4 + IPv6
# channels, add-path, extended messages, route refresh) and session "ipv6-ll" (IPv6 transport,
# global + link-local next hop). Exports routes with communities, large/extended communities and
# MED, withdraws some, asks for a route refresh, then shuts one session down with a message.
# Writes test/fixtures/bgp/bird-<version>/*.bin and index.json. Needs root; touches nothing outside
# its namespaces and temp dir. Usage: sudo scripts/capture-bird-fixtures.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VER=$(bird --version 2>&1 | awk '{print $3}')
OUT="$ROOT/test/fixtures/bgp/bird-$VER"
NSA="nrdt-bgpcap-$$-a"
NSB="nrdt-bgpcap-$$-b"
TMP=$(mktemp -d /tmp/nrd-bgpcap.XXXXXX)
TCPDUMP_PID=""

cleanup() {
  set +e
  for f in "$TMP"/bird-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
  sleep 0.3
  ip netns del "$NSA" 2>/dev/null
  ip netns del "$NSB" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NSA"
ip netns add "$NSB"
for ns in "$NSA" "$NSB"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  ip -n "$ns" link set lo up
done
ip -n "$NSA" link add va type veth peer name vb netns "$NSB"
ip -n "$NSA" addr add 192.0.2.1/24 dev va
ip -n "$NSB" addr add 192.0.2.2/24 dev vb
ip -n "$NSA" addr add 2001:db8:1::1/64 dev va nodad
ip -n "$NSB" addr add 2001:db8:1::2/64 dev vb nodad
ip -n "$NSA" link set va up
ip -n "$NSB" link set vb up

ip netns exec "$NSA" tcpdump -q -i va -U -s 0 -w "$TMP/bgp.pcap" 'tcp port 179' 2>"$TMP/tcpdump.log" &
TCPDUMP_PID=$!
for _ in $(seq 50); do grep -q listening "$TMP/tcpdump.log" 2>/dev/null && break; sleep 0.1; done

# A: AS 65001, the exporter. $1 = include the routes withdrawn later (1) or not (0).
conf_a() {
  local extra4="" extra6=""
  if [ "$1" = 1 ]; then
    extra4='route 10.244.4.0/24 blackhole;'
    extra6='route fd00:244:4::/64 blackhole;'
  fi
  cat <<CONF
log "$TMP/bird-a.log" all;
router id 192.0.2.1;
protocol device { }
protocol static s4 {
  ipv4;
  route 10.244.1.0/24 blackhole;
  route 10.244.2.0/24 blackhole;
  route 10.244.3.0/24 blackhole;
  route 10.244.5.0/24 blackhole;
  $extra4
}
protocol static s6 {
  ipv6;
  route fd00:244:1::/64 blackhole;
  route fd00:244:2::/64 blackhole;
  $extra6
}
filter export_attrs {
  if net = 10.244.1.0/24 || net = fd00:244:1::/64 then { bgp_community.add((65001,100)); bgp_community.add((65001,200)); }
  if net = 10.244.2.0/24 || net = 10.244.3.0/24 then bgp_large_community.add((65001,1,2));
  if net = 10.244.4.0/24 || net = fd00:244:4::/64 then bgp_med = 50;
  if net = 10.244.5.0/24 || net = fd00:244:2::/64 then {
    bgp_med = 70; bgp_community.add((65001,300)); bgp_large_community.add((65001,7,8));
    bgp_ext_community.add((rt,65001,7));
  }
  accept;
}
protocol bgp v4 {
  local 192.0.2.1 as 65001;
  neighbor 192.0.2.2 as 65002;
  connect delay time 1; connect retry time 2;
  enable extended messages on;
  graceful restart on;
  ipv4 { import all; export filter export_attrs; add paths rx; };
  ipv6 { import all; export filter export_attrs; next hop address 2001:db8:1::1; };
}
protocol bgp v6 {
  local 2001:db8:1::1 as 65001;
  neighbor 2001:db8:1::2 as 65002;
  connect delay time 1; connect retry time 2;
  ipv6 { import all; export filter export_attrs; };
}
CONF
}

cat >"$TMP/bird-b.conf" <<CONF
log "$TMP/bird-b.log" all;
router id 192.0.2.2;
protocol device { }
protocol static s4 { ipv4; route 10.245.0.0/24 blackhole; }
protocol bgp v4 {
  local 192.0.2.2 as 65002;
  neighbor 192.0.2.1 as 65001;
  passive on;
  ipv4 { import all; export all; add paths tx; };
  ipv6 { import all; export none; };
}
protocol bgp v6 {
  local 2001:db8:1::2 as 65002;
  neighbor 2001:db8:1::1 as 65001;
  passive on;
  ipv6 { import all; export none; };
}
CONF
conf_a 1 >"$TMP/bird-a.conf"

ip netns exec "$NSB" bird -c "$TMP/bird-b.conf" -s "$TMP/b.ctl" -P "$TMP/bird-b.pid"
ip netns exec "$NSA" bird -c "$TMP/bird-a.conf" -s "$TMP/a.ctl" -P "$TMP/bird-a.pid"

birdc_a() { ip netns exec "$NSA" birdc -s "$TMP/a.ctl" "$@"; }
birdc_b() { ip netns exec "$NSB" birdc -s "$TMP/b.ctl" "$@"; }

wait_for() { # wait_for <seconds> <command...>: poll every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for: $*" >&2; for l in "$TMP"/bird-*.log; do tail -n 20 "$l" >&2; done; birdc_b show route >&2; birdc_a show protocols >&2; exit 1; }
    sleep 0.2
  done
}
established() { [ "$(birdc_a show protocols | grep -c Established)" -ge 2 ]; }
routes_in_b() { [ "$(birdc_b show route | grep -c unicast)" -ge 11 ]; } # 5 IPv4 + 3 IPv6 on each session
wait_for 30 established
wait_for 15 routes_in_b
sleep 1

# Withdraw 10.244.4.0/24 and fd00:244:4::/64 (both sessions).
conf_a 0 >"$TMP/bird-a.conf"
birdc_a configure >/dev/null
gone() { ! birdc_b show route 10.244.4.0/24 | grep -q 10.244.4.0; }
wait_for 10 gone
sleep 0.5
# Route refresh (A asks B; with enhanced route refresh B answers BoRR ... EoRR).
birdc_a reload in v4 >/dev/null
sleep 1
# Administrative shutdown with an RFC 9003 shutdown communication.
birdc_a 'disable v4 "nrd fixture capture: maintenance"' >/dev/null
sleep 1
kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; TCPDUMP_PID=""

rm -rf "$OUT"; mkdir -p "$OUT"
node - "$TMP/bgp.pcap" "$OUT" "BIRD $VER" <<'JS'
// pcap → TCP streams (reassembled by sequence number) → BGP messages → named fixture files.
const fs = require('node:fs');
const path = require('node:path');
const [pcapFile, outDir, origin] = process.argv.slice(2);
const b = fs.readFileSync(pcapFile);
const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
if (u32(20) !== 1) throw new Error(`link type ${u32(20)}, expected Ethernet`);
const flows = new Map();
for (let o = 24; o + 16 <= b.length; ) {
  const incl = u32(o + 8);
  const pkt = b.subarray(o + 16, o + 16 + incl);
  o += 16 + incl;
  let p = 14, src, dst, proto, end;
  const et = pkt.readUInt16BE(12);
  if (et === 0x0800) {
    proto = pkt[p + 9]; src = [...pkt.subarray(p + 12, p + 16)].join('.'); dst = [...pkt.subarray(p + 16, p + 20)].join('.');
    end = p + pkt.readUInt16BE(p + 2); p += (pkt[p] & 15) * 4;
  } else if (et === 0x86dd) {
    proto = pkt[p + 6]; src = pkt.subarray(p + 8, p + 24).toString('hex'); dst = pkt.subarray(p + 24, p + 40).toString('hex');
    end = p + 40 + pkt.readUInt16BE(p + 4); p += 40;
  } else continue;
  if (proto !== 6) continue;
  const sport = pkt.readUInt16BE(p), dport = pkt.readUInt16BE(p + 2), seq = pkt.readUInt32BE(p + 4);
  const flags = pkt[p + 13];
  const payload = pkt.subarray(p + (pkt[p + 12] >> 4) * 4, end);
  const key = `${src}:${sport}>${dst}:${dport}`;
  if (!flows.has(key)) flows.set(key, { v6: et === 0x86dd, src, segs: [], isn: null });
  const f = flows.get(key);
  if (flags & 2) f.isn = (seq + 1) >>> 0; // SYN
  if (payload.length) f.segs.push({ seq, data: Buffer.from(payload) });
}
const messages = [];
let order = 0;
for (const [key, f] of flows) {
  if (!f.segs.length) continue;
  const base = f.isn ?? f.segs[0].seq;
  const segs = f.segs.map((s) => ({ off: (s.seq - base) >>> 0, data: s.data })).sort((x, y) => x.off - y.off);
  const parts = []; let have = 0;
  for (const s of segs) {
    if (s.off + s.data.length <= have) continue; // retransmission
    if (s.off > have) throw new Error(`gap in ${key} at ${have}`);
    parts.push(s.data.subarray(have - s.off)); have = s.off + s.data.length;
  }
  const stream = Buffer.concat(parts);
  const session = f.v6 ? 'ipv6-ll' : 'ipv4-ipv6';
  const sender = f.src === '192.0.2.1' || f.src.endsWith('0001') ? 'a' : 'b';
  for (let q = 0; q + 19 <= stream.length; ) {
    const len = stream.readUInt16BE(q + 16);
    if (len < 19 || q + len > stream.length) throw new Error(`bad framing in ${key}`);
    messages.push({ session, sender, order: order++, bytes: stream.subarray(q, q + len) });
    q += len;
  }
}
const fam = (afi) => (afi === 1 ? 'ipv4' : afi === 2 ? 'ipv6' : `afi${afi}`);
function describe(m) {
  const x = m.bytes, t = x[18];
  if (t === 1) return `open-${m.session}`;
  if (t === 4) return 'keepalive';
  if (t === 3) {
    const names = { '6/2': 'cease-admin-shutdown', '6/4': 'cease-admin-reset', '6/7': 'cease-collision' };
    return `notification-${names[`${x[19]}/${x[20]}`] ?? `${x[19]}-${x[20]}`}`;
  }
  if (t === 5) return `route-refresh-${['normal', 'borr', 'eorr'][x[21]] ?? `subtype${x[21]}`}-${fam(x.readUInt16BE(19))}`;
  const wl = x.readUInt16BE(19), al = x.readUInt16BE(21 + wl), a0 = 23 + wl, nlri = x.length - a0 - al;
  const types = new Set(); let reach = null, unreach = null;
  for (let p = a0; p < a0 + al; ) {
    const fl = x[p], ty = x[p + 1], ext = fl & 0x10, len = ext ? x.readUInt16BE(p + 2) : x[p + 2];
    const v = p + (ext ? 4 : 3);
    types.add(ty);
    if (ty === 14) reach = { afi: x.readUInt16BE(v), nh: x[v + 3], n: len - 5 - x[v + 3] };
    if (ty === 15) unreach = { afi: x.readUInt16BE(v), n: len - 3 };
    p = v + len;
  }
  if (wl === 0 && al === 0 && nlri === 0) return 'update-eor-ipv4';
  if (unreach && types.size === 1 && unreach.n === 0) return `update-eor-${fam(unreach.afi)}`;
  if (wl > 0 && nlri === 0 && !reach) return 'update-ipv4-withdraw';
  if (unreach && !reach) return `update-${fam(unreach.afi)}-withdraw`;
  const feats = [];
  if (types.has(8)) feats.push('communities');
  if (types.has(32)) feats.push('large');
  if (types.has(16)) feats.push('ext');
  if (types.has(4)) feats.push('med');
  if (reach && reach.nh === 32) feats.push('link-local');
  if (!feats.length) feats.push('plain');
  return `update-${reach ? fam(reach.afi) : 'ipv4'}-${feats.join('-')}`;
}
const index = { origin, note: 'captured by scripts/capture-bird-fixtures.sh; sender a = AS 65001, b = AS 65002', sessions: {}, messages: [] };
const seen = new Map(); const used = new Set();
for (const m of messages) {
  const hex = m.bytes.toString('hex');
  if (m.bytes[18] === 1) {
    const s = (index.sessions[m.session] ??= {});
    s[`open_${m.sender}`] = null; // filled below
  }
  let file = seen.get(hex);
  if (!file) {
    const baseName = describe(m); let name = baseName; let k = 2;
    while (used.has(name)) name = `${baseName}-${k++}`;
    used.add(name); file = `${name}.bin`; seen.set(hex, file);
    fs.writeFileSync(path.join(outDir, file), m.bytes);
  }
  if (m.bytes[18] === 1) index.sessions[m.session][`open_${m.sender}`] = file;
  if (!index.messages.some((e) => e.file === file)) index.messages.push({ file, session: m.session, sender: m.sender });
}
fs.writeFileSync(path.join(outDir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
for (const e of index.messages) console.log(`${e.session.padEnd(10)} ${e.sender} ${e.file}`);
JS
echo "fixtures in $OUT"
