// Child process for BPF_PROG_TEST_RUN inside a network namespace (started with
// `ip netns exec NS node test-run-agent.js '<json>'`): skb test runs see the routes, neighbours
// and loopback device of the caller's namespace, so FIB lookups are tested against a table the
// test builds instead of the machine's. Loads one object with knobs, seeds maps with raw bytes,
// runs each packet, prints one JSON line: [{retval, data}] (hex); with `events`, each reply also
// has the flow-event records (hex) the run left in the nrd_events ring buffer.
import { mapUpdateElem, progTestRun, ringBufferOpen } from '../../../daemon/datapath/libbpf.js';
import { loadObject } from '../../../daemon/datapath/objects.js';

export interface TestRunCommand {
  object: string;
  /** Knob values as decimal strings (u64 knobs do not fit a JSON number). */
  knobs: Record<string, string>;
  seed: Array<{ map: string; key: string; value: string }>;
  runs: Array<{ prog: string; data: string }>;
  /** Collect the flow events of each run (the object must have nrd_events). */
  events?: boolean;
}

export interface TestRunReply {
  retval: number;
  data: string;
  events?: string[];
}

const cmd = JSON.parse(process.argv[2] ?? '{}') as TestRunCommand;
const knobs = Object.fromEntries(Object.entries(cmd.knobs).map(([k, v]) => [k, BigInt(v)]));
const obj = loadObject({ path: cmd.object, knobs });
try {
  for (const s of cmd.seed) mapUpdateElem(obj.mapFd(s.map), Buffer.from(s.key, 'hex'), Buffer.from(s.value, 'hex'), 0);
  let records: string[] = [];
  const ring = cmd.events ? ringBufferOpen(obj.mapFd('nrd_events'), (rec) => records.push(Buffer.from(rec).toString('hex'))) : undefined;
  const out: TestRunReply[] = cmd.runs.map((r) => {
    const res = progTestRun(obj.programFd(r.prog), { data: Buffer.from(r.data, 'hex') });
    if (!ring) return { retval: res.retval, data: res.dataOut.toString('hex') };
    ring.consume();
    const events = records;
    records = [];
    return { retval: res.retval, data: res.dataOut.toString('hex'), events };
  });
  ring?.free();
  process.stdout.write(JSON.stringify(out) + '\n');
} finally {
  obj.close();
}
