// Child process for the endpoint datapath tests: runs DatapathSubsystem (libbpf in its worker
// thread) inside a node namespace (`ip netns exec NS node endpoint-dp-agent.js '<json>'`), hands it
// the endpoint set, prints the view and the metrics as one JSON line, then exits without stop()
// (as after kill -9: nothing is torn down) or with stop() (SIGTERM) when asked.
import { Registry } from 'prom-client';
import { loadConfigObject } from '../../../daemon/config/index.js';
import type { LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { DatapathSubsystem } from '../../../daemon/datapath/subsystem.js';

interface AgentCommand {
  site: Record<string, unknown>;
  objectDir: string;
  endpoints: LocalEndpoint[];
  /** Graceful stop (SIGTERM) instead of an abrupt exit. */
  stop?: boolean;
  /** Run the NAT GC once before printing. */
  gc?: boolean;
}

const cmd = JSON.parse(process.argv[2] ?? '{}') as AgentCommand;
// services.cgroupPath "" unless the test names its own cgroup: nrd's default, the machine's root
// cgroup, would put the socket hooks on every process of the machine running the tests.
const noSockHooks = (site: Record<string, unknown>): Record<string, unknown> =>
  ({ ...site, services: { cgroupPath: '', ...(site.services as Record<string, unknown> | undefined) } });
const r = loadConfigObject(noSockHooks(cmd.site), { env: {} });
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const metrics = new Registry();
const sub = new DatapathSubsystem({ objectDir: cmd.objectDir, metrics });
sub.setEndpoints(cmd.endpoints);
const readiness: unknown[] = [];
await sub.start({ config: r.config, log: silentLogger(), ready: (x) => readiness.push(x) });
const view = await sub.view();
const text = await metrics.metrics();
if (cmd.stop) await sub.stop();
process.stdout.write(JSON.stringify({ view, metrics: text, readiness }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
process.exit(0);
