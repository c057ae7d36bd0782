// Bench helper run inside a namespace (`ip netns exec NS node program-routes.js N [mode]`):
// programs N /24 routes with protocol 220 through the netlink KernelPort, optionally ECMP, then
// reads them back; prints one JSON line with the timings. Modes: batch (default: replaceRoutes, what
// the reconciler uses — one call, large datagrams, one ACK per datagram) | pipelined (a promise per
// route, packed per tick) | sequential (await each, like a naive client).
import { NetlinkKernelPort } from '../../daemon/kernel/netlink-port.js';
import { NRD_PROTOCOL, type Route } from '../../daemon/kernel/types.js';

const n = Number(process.argv[2] ?? 10_000);
const mode = process.argv[3] || 'batch';
const ecmp = process.argv[4] === 'ecmp';

const port = new NetlinkKernelPort();
const routes: Route[] = [];
for (let i = 0; i < n; i++) {
  routes.push({
    family: 4,
    dst: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`,
    table: 254,
    protocol: NRD_PROTOCOL,
    type: 'unicast',
    nextHops: ecmp ? [{ gateway: '192.0.2.2' }, { gateway: '198.51.100.2' }] : [{ gateway: '192.0.2.2' }],
  });
}
const t0 = process.hrtime.bigint();
let failed = 0;
if (mode === 'sequential') {
  for (const r of routes) await port.replaceRoute(r);
} else if (mode === 'batch') {
  failed = (await port.replaceRoutes(routes)).length;
} else {
  await Promise.all(routes.map((r) => port.replaceRoute(r)));
}
const t1 = process.hrtime.bigint();
const back = (await port.listRoutes(4, 254)).filter((r) => r.protocol === NRD_PROTOCOL).length;
const t2 = process.hrtime.bigint();
process.stdout.write(
  `${JSON.stringify({ n, mode, ecmp, failed, writeMs: Number(t1 - t0) / 1e6, dumpMs: Number(t2 - t1) / 1e6, readBack: back, ...port.stats })}\n`,
);
port.close();
