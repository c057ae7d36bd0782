#!/usr/bin/env bash
# Captures real BFD control packets (RFC 5880, single-hop UDP 3784 per RFC 5881) from BIRD 2's `bfd`
# protocol and FRR's bfdd as codec fixtures. Three namespaces of its own on one bridge-less veth
# triangle: BIRD (A) ↔ FRR bfdd (B) without authentication, and BIRD (A) ↔ BIRD (C) with
# meticulous keyed SHA1 (FRR 8.4's bfdd has no authentication). Both sessions come Up; then B's
# peer is shut down (AdminDown, diag 7) and A ↔ C has its interval changed (a Poll Sequence).
# Writes test/fixtures/bfd/<origin>/*.bin and index.json (origin bird-<version> or frr-<version>).
# Needs root; touches nothing outside its namespaces and temp dir; bfdd runs by hand with a temp
# config and vty socket dir, never as the system service. Usage: sudo scripts/capture-bfd-fixtures.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIRD_VER=$(bird --version 2>&1 | awk '{print $3}')
FRR_VER=$(/usr/lib/frr/bfdd --version 2>&1 | awk '/version/ {print $3; exit}')
NSA="nrdt-bfdcap-$$-a"
NSB="nrdt-bfdcap-$$-b"
NSC="nrdt-bfdcap-$$-c"
TMP=$(mktemp -d /tmp/nrd-bfdcap.XXXXXX)
chmod 755 "$TMP"
TCPDUMP_PID=""

cleanup() {
  set +e
  for f in "$TMP"/*.pid "$TMP"/frr/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
  sleep 0.3
  ip netns del "$NSA" 2>/dev/null
  ip netns del "$NSB" 2>/dev/null
  ip netns del "$NSC" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

for ns in "$NSA" "$NSB" "$NSC"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NSA" link add vab type veth peer name vba netns "$NSB"
ip -n "$NSA" link add vac type veth peer name vca netns "$NSC"
ip -n "$NSA" addr add 192.0.2.1/30 dev vab
ip -n "$NSB" addr add 192.0.2.2/30 dev vba
ip -n "$NSA" addr add 192.0.2.5/30 dev vac
ip -n "$NSC" addr add 192.0.2.6/30 dev vca
ip -n "$NSA" link set vab up; ip -n "$NSA" link set vac up
ip -n "$NSB" link set vba up; ip -n "$NSC" link set vca up

ip netns exec "$NSA" tcpdump -q -i any -U -s 0 -w "$TMP/bfd.pcap" 'udp port 3784' 2>"$TMP/tcpdump.log" &
TCPDUMP_PID=$!
for _ in $(seq 50); do grep -q listening "$TMP/tcpdump.log" 2>/dev/null && break; sleep 0.1; done

bird_a() {
  cat <<CONF
log "$TMP/bird-a.log" all;
router id 192.0.2.1;
protocol device { }
protocol bfd {
  interface "vab" { interval $1 ms; multiplier 3; };
  interface "vac" { interval $1 ms; multiplier 3; authentication meticulous keyed sha1; password "nrd-bfd-key" { id 7; }; };
  neighbor 192.0.2.2 dev "vab" local 192.0.2.1;
  neighbor 192.0.2.6 dev "vac" local 192.0.2.5;
}
CONF
}
bird_a 300 >"$TMP/bird-a.conf"
cat >"$TMP/bird-c.conf" <<CONF
log "$TMP/bird-c.log" all;
router id 192.0.2.6;
protocol device { }
protocol bfd {
  interface "vca" { interval 300 ms; multiplier 3; authentication meticulous keyed sha1; password "nrd-bfd-key" { id 7; }; };
  neighbor 192.0.2.5 dev "vca" local 192.0.2.6;
}
CONF
cat >"$TMP/frr.conf" <<CONF
bfd
 peer 192.0.2.1 local-address 192.0.2.2
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
CONF

ip netns exec "$NSA" bird -c "$TMP/bird-a.conf" -s "$TMP/a.ctl" -P "$TMP/bird-a.pid"
ip netns exec "$NSC" bird -c "$TMP/bird-c.conf" -s "$TMP/c.ctl" -P "$TMP/bird-c.pid"
mkdir -p "$TMP/vty" "$TMP/frr"; chown frr:frr "$TMP/vty" "$TMP/frr"
ip netns exec "$NSB" /usr/lib/frr/bfdd -d -f "$TMP/frr.conf" -i "$TMP/frr/bfdd.pid" \
  --vty_socket "$TMP/vty" --bfdctl "$TMP/frr/bfdd.sock" -z "$TMP/frr/zserv.api" -A 127.0.0.1 -P 0 --log "file:$TMP/frr/bfdd.log"

birdc_a() { ip netns exec "$NSA" birdc -s "$TMP/a.ctl" "$@"; }
wait_for() { # wait_for <seconds> <command...>
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { echo "timeout waiting for: $*" >&2; birdc_a show bfd sessions >&2; tail -n 20 "$TMP/frr/bfdd.log" >&2; exit 1; }
    sleep 0.2
  done
}
both_up() { [ "$(birdc_a show bfd sessions | grep -c ' Up ')" -ge 2 ]; }
wait_for 30 both_up
sleep 2
# A Poll Sequence: A's interval changes while Up.
bird_a 400 >"$TMP/bird-a.conf"
birdc_a configure >/dev/null
sleep 2
# FRR's peer goes AdminDown (diag 7).
ip netns exec "$NSB" vtysh --vty_socket "$TMP/vty" -c 'configure terminal' -c 'bfd' -c 'peer 192.0.2.1 local-address 192.0.2.2' -c 'shutdown' >/dev/null
sleep 2
kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; TCPDUMP_PID=""

node - "$TMP/bfd.pcap" "$ROOT/test/fixtures/bfd" "bird-$BIRD_VER" "frr-$FRR_VER" <<'JS'
// pcap (Linux cooked v1 or v2 from -i any) → UDP payloads → one file per distinct packet shape.
const fs = require('node:fs');
const path = require('node:path');
const [pcapFile, outRoot, birdOrigin, frrOrigin] = process.argv.slice(2);
const b = fs.readFileSync(pcapFile);
const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
const link = u32(20);
const hdr = link === 113 ? 16 : link === 276 ? 20 : link === 1 ? 14 : -1;
if (hdr < 0) throw new Error(`link type ${link}`);
const states = ['admindown', 'down', 'init', 'up'];
const seen = new Map();
const out = { [birdOrigin]: [], [frrOrigin]: [] };
for (const d of Object.keys(out)) { fs.rmSync(path.join(outRoot, d), { recursive: true, force: true }); fs.mkdirSync(path.join(outRoot, d), { recursive: true }); }
for (let o = 24; o + 16 <= b.length; ) {
  const incl = u32(o + 8);
  const pkt = b.subarray(o + 16, o + 16 + incl);
  o += 16 + incl;
  const ip = pkt.subarray(hdr);
  if ((ip[0] >> 4) !== 4 || ip[9] !== 17) continue;
  const src = [...ip.subarray(12, 16)].join('.');
  const ttl = ip[8];
  const udp = ip.subarray((ip[0] & 15) * 4);
  const payload = Buffer.from(udp.subarray(8, udp.readUInt16BE(4)));
  const origin = src === '192.0.2.2' ? frrOrigin : birdOrigin;
  const auth = payload[1] & 4 ? 'meticulous-sha1' : 'noauth';
  const flags = (payload[1] & 0x20 ? '-poll' : '') + (payload[1] & 0x10 ? '-final' : '');
  const name = `${states[payload[1] >> 6]}-diag${payload[0] & 31}-${auth}${flags}`;
  const key = `${origin}/${name}`;
  if (seen.has(key)) continue;
  seen.set(key, true);
  const file = `${name}.bin`;
  fs.writeFileSync(path.join(outRoot, origin, file), payload);
  out[origin].push({ file, source: src, ttl, sport: udp.readUInt16BE(0), auth: auth === 'noauth' ? null : { type: 'meticulous-keyed-sha1', keyId: 7, secret: 'nrd-bfd-key' } });
}
for (const [origin, files] of Object.entries(out)) {
  const index = { origin: origin.replace('-', ' '), note: 'captured by scripts/capture-bfd-fixtures.sh (BIRD 192.0.2.1/.5, FRR bfdd 192.0.2.2, BIRD 192.0.2.6)', packets: files };
  fs.writeFileSync(path.join(outRoot, origin, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  for (const f of files) console.log(`${origin.padEnd(14)} ttl ${f.ttl} sport ${f.sport} ${f.file}`);
}
JS
echo "fixtures in $ROOT/test/fixtures/bfd"
