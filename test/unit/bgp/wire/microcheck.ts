// Not a test: a quick check of the codec's full-table speed (1M IPv4 prefixes packed into UPDATEs,
// framed and decoded). Run: node dist/test/unit/bgp/wire/microcheck.js [count]
import { Framer, decodeMessage, packUpdates } from '../../../../daemon/bgp/wire/index.js';
import type { Nlri, SessionContext } from '../../../../daemon/bgp/types.js';

const count = Number(process.argv[2] ?? 1_000_000);
const ctx: SessionContext = { fourOctetAs: true, extendedMessage: false, addPathReceive: new Set(), addPathSend: new Set(), peerType: 'ebgp' };
const prefixes: Nlri[] = [];
for (let i = 0; i < count; i++) prefixes.push({ prefix: `${10 + (i >>> 16)}.${(i >>> 8) & 0xff}.${i & 0xff}.0/24` });

let t = process.hrtime.bigint();
const msgs = packUpdates({ origin: 0, asPath: [{ type: 2, asns: [65001, 65002] }], nextHop: '192.0.2.1', communities: [0xfde80001] }, prefixes, ctx, '1/1');
const packMs = Number(process.hrtime.bigint() - t) / 1e6;
const stream = Buffer.concat(msgs);

t = process.hrtime.bigint();
const framer = new Framer();
let n = 0;
for (let off = 0; off < stream.length; off += 65536) {
  framer.push(stream.subarray(off, off + 65536));
  for (const f of framer) {
    if (!f.ok) throw new Error(f.error.reason);
    const r = decodeMessage(f.frame, ctx);
    if (!r.ok || r.message.type !== 'update') throw new Error('decode failed');
    n += r.message.nlri.length;
  }
}
const decMs = Number(process.hrtime.bigint() - t) / 1e6;
console.log(`packed ${count} prefixes into ${msgs.length} UPDATEs in ${packMs.toFixed(0)} ms (${((count / packMs) * 1e3 / 1e6).toFixed(2)} M/s)`);
console.log(`framed+decoded ${n} prefixes in ${decMs.toFixed(0)} ms (${((n / decMs) * 1e3 / 1e6).toFixed(2)} M/s)`);
console.log(`rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
