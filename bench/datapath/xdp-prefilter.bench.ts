// Benchmark of the XDP prefilter's per-packet cost (BPF_PROG_TEST_RUN, kernel-measured ns per
// run) as the deny list grows: an LPM-trie lookup should stay near-flat from 0 to 16k prefixes.
// Prints ns/packet per size and the ratio to the empty list measured in the same run. Root.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun } from '../../daemon/datapath/libbpf.js';
import { TypedMap, denyValueCodec, lpm4KeyCodec } from '../../daemon/datapath/maps.js';
import { loadObject } from '../../daemon/datapath/objects.js';

const objectDir = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const REPEAT = 200_000;

function frame(src: number[]): Buffer {
  const f = Buffer.alloc(64);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from(src).copy(f, 26);
  Buffer.from([192, 0, 2, 1]).copy(f, 30);
  return f;
}

const obj = loadObject({ path: join(objectDir, 'nrd_xdp.bpf.o') });
try {
  const prog = obj.programFd('nrd_xdp_prefilter');
  const deny = new TypedMap(obj.mapFd('nrd_deny4'), lpm4KeyCodec, denyValueCodec);
  const passing = frame([192, 0, 2, 99]); // never denied
  let baseline = 0;
  let filled = 0;
  for (const size of [0, 100, 1000, 16000]) {
    // Fill with /24s in 10.0.0.0/8 up to `size` entries (a realistic mix of prefix lengths is a
    // later refinement; /24s give the trie its deepest common shape).
    for (; filled < size; filled++) {
      const addr = Buffer.from([10, (filled >> 8) & 0xff, filled & 0xff, 0]);
      deny.set({ family: 4, prefixlen: 24, addr }, { rule: filled, flags: 0 });
    }
    const runs = [1, 2, 3].map(() => progTestRun(prog, { data: passing, repeat: REPEAT }).durationNs);
    const ns = Math.min(...runs);
    if (size === 0) baseline = ns;
    console.log(`deny entries ${String(size).padStart(6)}: ${ns} ns/packet  ratio to empty ${(ns / baseline).toFixed(2)}`);
  }
} finally {
  obj.close();
}
