// Child process for the endpoint datapath tests: runs DatapathSubsystem (libbpf in its worker
// thread) inside a node namespace (`ip netns exec NS node endpoint-dp-agent.js '<json>'`), hands it
// the endpoint set, prints the view and the metrics as one JSON line, then exits without stop()
// (as after kill -9: nothing is torn down) or with stop() (SIGTERM) when asked.
import { pino } from 'pino';
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
  /** Print the warn and error log lines too (as `warnings`); default: no log. */
  warnings?: boolean;
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
const warnings: unknown[] = [];
const log = cmd.warnings ? pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) }) : silentLogger();
await sub.start({ config: r.config, log, ready: (x) => readiness.push(x) });
const view = await sub.view();
const text = await metrics.metrics();
if (cmd.stop) await sub.stop();
process.stdout.write(JSON.stringify({ view, metrics: text, readiness, ...(cmd.warnings ? { warnings } : {}) }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
process.exit(0);
