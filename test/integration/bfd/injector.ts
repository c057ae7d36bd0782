// The raw route injector of bench/routing/fib-e2e-source.ts as a process of its own (run inside the
// peer namespace by ingest.ts): NRDT_INJECT_ROUTES IPv4 routes over one eBGP session to TARGET.
import { runInjector } from '../../../bench/routing/fib-e2e-source.js';

const n = Number(process.env.NRDT_INJECT_ROUTES ?? '0');
if (!Number.isInteger(n) || n <= 0) {
  process.stderr.write('NRDT_INJECT_ROUTES must be a positive integer\n');
  process.exit(2);
}
await runInjector(n);
