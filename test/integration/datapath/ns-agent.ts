// Child process for the attach tests: runs Datapath inside a network namespace (started with
// `ip netns exec NS node ns-agent.js '<json>'`), since libbpf and if_nametoindex act on the calling
// thread's namespace. Each run is a fresh process, i.e. a daemon restart. Prints one JSON line.
import { Datapath, type DatapathOptions } from '../../../daemon/datapath/datapath.js';

interface AgentCommand {
  action: 'start' | 'stop-detach';
  options: DatapathOptions;
}

const cmd = JSON.parse(process.argv[2] ?? '{}') as AgentCommand;
const dp = new Datapath();
let out: unknown;
if (cmd.action === 'start') {
  const status = dp.start(cmd.options);
  out = { status, stats: dp.stats() };
  dp.stop();
} else {
  dp.start({ ...cmd.options, endpoints: [], uplink: undefined });
  dp.stop({ detach: true });
  out = { stopped: true };
}
process.stdout.write(JSON.stringify(out, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
