// Messages captured from a real BIRD 2.0.12 session (scripts/capture-bird-fixtures.sh): each must
// decode without error and re-encode to the same bytes. The loader fails when it finds no fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeMessage, encodeMessage, isEndOfRib } from '../../../../daemon/bgp/wire/index.js';
import { negotiate } from '../../../../daemon/bgp/session/negotiate.js';
import { sessionConfig } from '../../../../daemon/bgp/session/config.js';
import type { OpenMessage, SessionContext, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { ctxOf, toHex } from './helpers.js';

interface Index {
  origin: string;
  sessions: Record<string, { open_a: string; open_b: string }>;
  messages: { file: string; session: string; sender: 'a' | 'b' }[];
}

const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'bgp');

/** Every capture directory with its index; throws (fails the suite) when there is none. */
export function loadCaptures(): { dir: string; index: Index }[] {
  const dirs = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'index.json'))) : [];
  if (dirs.length === 0) throw new Error(`no captured BGP fixtures under ${FIXTURES} (run scripts/capture-bird-fixtures.sh)`);
  return dirs.map((d) => {
    const dir = join(FIXTURES, d);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Index;
    if (index.messages.length === 0) throw new Error(`${dir}/index.json lists no messages`);
    const bins = readdirSync(dir).filter((f) => f.endsWith('.bin')).sort();
    const listed = [...new Set(index.messages.map((m) => m.file))].sort();
    assert.deepEqual(bins, listed, `${dir}: every .bin is listed in index.json and exists`);
    return { dir, index };
  });
}

export interface CaptureFrame {
  name: string;
  bytes: Uint8Array;
  /** What the receiver negotiated (decoding side). */
  ctx: SessionContext;
  /** What the sender negotiated (encoding side: add-path send instead of receive). */
  senderCtx: SessionContext;
}

/** The context the daemon's one negotiation (session/negotiate.ts) gives `local` facing `remote`. */
function negotiatedContext(local: OpenMessage, remote: OpenMessage): SessionContext {
  const l = local.capabilities;
  const cfg = sessionConfig({
    localAs: l.fourOctetAs ?? local.myAs,
    peerAs: remote.capabilities.fourOctetAs ?? remote.myAs,
    localId: local.bgpId,
    holdTime: local.holdTime,
    families: l.multiprotocol.length > 0 ? l.multiprotocol : [{ afi: 1, safi: 1 }],
    routeRefresh: l.routeRefresh,
    enhancedRouteRefresh: l.enhancedRouteRefresh,
    extendedMessage: l.extendedMessage,
    fourOctetAs: l.fourOctetAs !== undefined,
    ...(l.addPath ? { addPath: l.addPath } : {}),
  });
  const r = negotiate(cfg, remote);
  assert.ok(r.ok, r.ok ? '' : r.error.reason);
  return r.negotiated.context;
}

export function allCaptureFrames(): CaptureFrame[] {
  const out: CaptureFrame[] = [];
  for (const { dir, index } of loadCaptures()) {
    const open = (file: string): OpenMessage => {
      const r = decodeMessage(readFileSync(join(dir, file)), ctxOf());
      assert.ok(r.ok && r.message.type === 'open', `${file} is an OPEN`);
      return r.message as OpenMessage;
    };
    for (const m of index.messages) {
      const s = index.sessions[m.session]!;
      const [sender, receiver] = m.sender === 'a' ? [s.open_a, s.open_b] : [s.open_b, s.open_a];
      // The receiver decodes with what it negotiated: its own OPEN is "local".
      const ctx = negotiatedContext(open(receiver), open(sender));
      const senderCtx = negotiatedContext(open(sender), open(receiver));
      out.push({ name: `${dir.split('/').pop()}/${m.file}`, bytes: readFileSync(join(dir, m.file)), ctx, senderCtx });
    }
  }
  return out;
}

const frames = allCaptureFrames();

test('BIRD captures: the loader found fixtures of every message type', () => {
  const types = new Set(frames.map((f) => f.bytes[18]));
  assert.deepEqual([...types].sort(), [1, 2, 3, 4, 5]);
});

for (const f of frames) {
  test(`BIRD capture ${f.name}: decodes cleanly and re-encodes byte for byte`, () => {
    const r = decodeMessage(f.bytes, f.ctx);
    assert.ok(r.ok, r.ok ? '' : r.error.reason);
    assert.deepEqual(r.errors, []);
    assert.equal(toHex(encodeMessage(r.message, f.senderCtx)), toHex(f.bytes));
  });
}

const byName = (n: string): { bytes: Uint8Array; ctx: SessionContext } => {
  const f = frames.find((x) => x.name.endsWith(`/${n}`));
  assert.ok(f, `fixture ${n} exists`);
  return f;
};
const update = (n: string): UpdateMessage => {
  const f = byName(n);
  const r = decodeMessage(f.bytes, f.ctx);
  assert.ok(r.ok && r.message.type === 'update');
  return r.message as UpdateMessage;
};

test('BIRD capture contents: OPEN capabilities as BIRD was configured', () => {
  const f = byName('open-ipv4-ipv6.bin');
  const r = decodeMessage(f.bytes, f.ctx);
  assert.ok(r.ok && r.message.type === 'open');
  const o = r.message as OpenMessage;
  assert.equal(o.myAs, 65001);
  assert.equal(o.bgpId, '192.0.2.1');
  assert.equal(o.capabilities.fourOctetAs, 65001);
  assert.deepEqual(o.capabilities.multiprotocol, [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }]);
  assert.ok(o.capabilities.routeRefresh && o.capabilities.enhancedRouteRefresh && o.capabilities.extendedMessage);
  assert.deepEqual(o.capabilities.addPath, [{ afi: 1, safi: 1, mode: 1 }]);
  assert.equal(o.capabilities.gracefulRestart?.restartTime, 120);
  assert.deepEqual(o.capabilities.unknown.map((u) => u.code), [71]); // long-lived GR, kept as received
});

test('BIRD capture contents: communities, add-path, link-local next hop, EoR, shutdown text', () => {
  const all = update('update-ipv4-communities-large-ext-med.bin');
  assert.deepEqual(all.nlri, [{ prefix: '10.244.5.0/24' }]);
  assert.deepEqual(all.attrs?.asPath, [{ type: 2, asns: [65001] }]);
  assert.equal(all.attrs?.med, 70);
  assert.deepEqual(all.attrs?.communities, [65001 * 65536 + 300]);
  assert.deepEqual(all.attrs?.largeCommunities, [{ global: 65001, local1: 7, local2: 8 }]);
  assert.deepEqual(all.attrs?.extCommunities, ['0002fde900000007']);
  const ap = update('update-ipv4-plain.bin');
  assert.equal(ap.nlri[0]?.prefix, '10.245.0.0/24');
  assert.equal(typeof ap.nlri[0]?.pathId, 'number', 'add-path rx negotiated: path id decoded');
  const v6 = update('update-ipv6-med-link-local.bin');
  assert.equal(v6.mpReach?.nextHops[0], '2001:db8:1::1');
  assert.match(v6.mpReach?.nextHops[1] ?? '', /^fe80::/);
  assert.equal(isEndOfRib(update('update-eor-ipv4.bin')), '1/1');
  assert.equal(isEndOfRib(update('update-eor-ipv6.bin')), '2/1');
  assert.equal(isEndOfRib(update('update-ipv6-withdraw.bin')), null);
  const n = byName('notification-cease-admin-shutdown.bin');
  const r = decodeMessage(n.bytes, n.ctx);
  assert.ok(r.ok && r.message.type === 'notification');
  assert.equal(r.message.shutdownMessage, 'nrd fixture capture: maintenance');
});
