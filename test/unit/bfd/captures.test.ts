// Control packets captured from BIRD 2's bfd protocol and FRR's bfdd (scripts/capture-bfd-fixtures.sh):
// each decodes, re-encodes to the same bytes, and the authenticated ones verify with the capture's
// key. The loader fails when it finds no fixture of an origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeControl, encodeControl, verifyAuth, type AuthKey } from '../../../daemon/bfd/packet.js';
import { toHex } from '../bgp/wire/helpers.js';

interface Index {
  origin: string;
  packets: { file: string; source: string; ttl: number; sport: number; auth: { type: 'meticulous-keyed-sha1'; keyId: number; secret: string } | null }[];
}

const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'bfd');

function loadOrigin(prefix: string): { dir: string; index: Index }[] {
  const dirs = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((d) => d.startsWith(prefix) && existsSync(join(FIXTURES, d, 'index.json'))) : [];
  if (dirs.length === 0) throw new Error(`no captured ${prefix} BFD fixtures under ${FIXTURES} (run scripts/capture-bfd-fixtures.sh)`);
  return dirs.map((d) => {
    const dir = join(FIXTURES, d);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Index;
    if (index.packets.length === 0) throw new Error(`${dir}/index.json lists no packets`);
    const bins = readdirSync(dir).filter((f) => f.endsWith('.bin')).sort();
    assert.deepEqual(bins, index.packets.map((p) => p.file).sort(), `${dir}: index and files disagree`);
    return { dir, index };
  });
}

for (const origin of ['bird-', 'frr-']) {
  test(`captured ${origin}* packets decode, re-encode byte for byte, verify`, () => {
    let n = 0;
    const states = new Set<string>();
    for (const { dir, index } of loadOrigin(origin)) {
      for (const f of index.packets) {
        const bytes = new Uint8Array(readFileSync(join(dir, f.file)));
        const p = decodeControl(bytes);
        states.add(p.state);
        assert.equal(f.ttl, 255, `${f.file}: single-hop packets carry TTL 255 (RFC 5881 §5)`);
        const key: AuthKey | undefined = f.auth ? { type: f.auth.type, keyId: f.auth.keyId, secret: new TextEncoder().encode(f.auth.secret) } : undefined;
        assert.equal(verifyAuth(bytes, p, key), null, f.file);
        const again = encodeControl(p, key, p.auth && p.auth.type !== 'simple' ? p.auth.sequence : 0);
        assert.equal(toHex(again), toHex(bytes), f.file);
        // The file name says what the packet is (the capture script names them by content).
        assert.ok(f.file.startsWith(p.state.toLowerCase()), f.file);
        assert.equal(f.file.includes('-poll'), p.poll, f.file);
        assert.equal(f.file.includes('-final'), p.final, f.file);
        n++;
      }
    }
    assert.ok(n >= 4, `only ${n} packets`);
    assert.ok(states.has('Up'), 'a capture with the session Up');
  });
}
