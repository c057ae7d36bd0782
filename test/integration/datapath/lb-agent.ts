// Child process for the service load-balancing namespace test: runs DatapathSubsystem inside the
// node namespace for the whole test (a removed backend's drain lives in its memory) and answers
// one JSON command per stdin line with one JSON line: services (set, wait until written), status
// (datapath view of the services), ct / flush (nrd_ct), gc (run the timer's GC now), metrics.
import { createInterface } from 'node:readline';
import { Registry } from 'prom-client';
import { loadConfigObject } from '../../../daemon/config/index.js';
import type { LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { DatapathSubsystem } from '../../../daemon/datapath/subsystem.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';

interface Start {
  site: Record<string, unknown>;
  objectDir: string;
  endpoints: LocalEndpoint[];
}
type Command =
  | { op: 'services'; services: ServiceRecord[] }
  | { op: 'status' }
  | { op: 'ct'; service?: string }
  | { op: 'flush'; service?: string }
  | { op: 'gc' }
  | { op: 'metrics' }
  | { op: 'exit' };

const start = JSON.parse(process.argv[2] ?? '{}') as Start;
// services.cgroupPath "" unless the test names its own cgroup: nrd's default, the machine's root
// cgroup, would put the socket hooks on every process of the machine running the tests.
const noSockHooks = (site: Record<string, unknown>): Record<string, unknown> =>
  ({ ...site, services: { cgroupPath: '', ...(site.services as Record<string, unknown> | undefined) } });
const r = loadConfigObject(noSockHooks(start.site), { env: {} });
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const metrics = new Registry();
const sub = new DatapathSubsystem({ objectDir: start.objectDir, metrics });
sub.setEndpoints(start.endpoints);
await sub.start({ config: r.config, log: silentLogger(), ready: () => {} });
const reply = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) + '\n');
};
reply({ started: (await sub.view()).status?.ready ?? false });

for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line) as Command;
  try {
    switch (c.op) {
      case 'services': await sub.setServices(c.services); reply({ ok: true }); break;
      case 'status': reply(Object.fromEntries(sub.serviceStatus())); break;
      case 'ct': reply(await sub.ctList(c.service)); break;
      case 'flush': reply({ deleted: await sub.ctFlush(c.service) }); break;
      // The GC timer's body, run now (private: the test must not wait 30 s).
      case 'gc': await (sub as unknown as { natGc(): Promise<void> }).natGc(); reply({ ok: true }); break;
      case 'metrics': reply({ text: await metrics.metrics() }); break;
      case 'exit': await sub.stop(); process.exit(0);
    }
  } catch (e) {
    reply({ error: (e as Error).message });
  }
}
