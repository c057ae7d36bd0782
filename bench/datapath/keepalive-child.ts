// Child of keepalive-gaps.bench.ts, run as `ip netns exec NODE node keepalive-child.js '<json>'`:
// nrd's BGP speaker holds a session with 1 s keepalives (hold time 3 s) to BIRD while the
// datapath (re)loads every program `rounds` times, back to back, with libbpf in a worker thread or
// on this (main) thread. Prints one JSON line per event with Date.now() times; the bench measures
// the keepalive gaps on the wire, at BIRD's side. The default pin path makes nrd mount its own
// bpffs in this command's private mount namespace, which ends with the child.
import { BgpSpeaker } from '../../daemon/bgp/speaker.js';
import { createDatapathHost, type DatapathWhere } from '../../daemon/datapath/host.js';

interface ChildCommand {
  where: DatapathWhere;
  rounds: number;
  uplink: string;
  peer: string;
  localAsn: number;
  peerAsn: number;
  routerId: string;
  objectDir: string;
  /** Quiet time before and after the reloads, so the gaps around them are seen too. */
  settleMs: number;
}

const cmd = JSON.parse(process.argv[2] ?? '{}') as ChildCommand;
const emit = (event: string, extra: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ event, t: Date.now(), ...extra })}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let established: () => void;
const up = new Promise<void>((r) => (established = r));
const speaker = new BgpSpeaker(
  {
    asn: cmd.localAsn,
    routerId: cmd.routerId,
    listen: null,
    holdTime: 3,
    connectRetryTime: 1,
    gracefulRestart: { enabled: false, restartTime: 120, stalePathTime: 360 },
    ecmpMax: 1,
    import: { ranges: [] },
    export: {},
    peers: [{ address: cmd.peer, asn: cmd.peerAsn, families: ['1/1'] }],
  },
  { hooks: { peerStateChanged: (_p, _from, to) => (to === 'Established' ? established() : undefined) } },
);
await speaker.start();
const timeout = setTimeout(() => {
  emit('error', { message: 'session not Established within 20 s' });
  process.exit(1);
}, 20_000);
await up;
clearTimeout(timeout);
emit('established');
await sleep(cmd.settleMs);

const host = createDatapathHost(cmd.where);
const options = { pinPath: '/sys/fs/bpf/nrd', uplink: cmd.uplink, objectDir: cmd.objectDir, deny: ['203.0.113.0/24'] };
// A 5 ms ticker on the speaker's event loop: its longest gap is the longest stall.
let lastTick = performance.now();
let stallMs = 0;
const ticker = setInterval(() => {
  const now = performance.now();
  stallMs = Math.max(stallMs, now - lastTick);
  lastTick = now;
}, 5);
emit('reloads-start');
const durations: number[] = [];
for (let i = 0; i < cmd.rounds; i++) {
  // Every program anew: close the objects, load and verify both again, re-attach (the pinned
  // XDP link is updated in place), as a daemon restart or a knob change does.
  const t0 = performance.now();
  await host.stop();
  const st = await host.start(options);
  durations.push(performance.now() - t0);
  if (!st.ready) emit('not-ready', { reason: st.reason });
}
await sleep(50); // let the ticker see the end of a stall
clearInterval(ticker);
emit('reloads-end', { roundMs: durations, loopMaxMs: stallMs });
await host.stop({ detach: true });
await host.close();
await sleep(cmd.settleMs);
emit('done');
await speaker.stop('shutdown').catch(() => undefined);
process.exit(0);
