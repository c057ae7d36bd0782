// HTTP mapping of the datapath subsystem's queries: GET /v1/datapath (manager status, BPF counters
// summed over CPUs, the last load error). The datapath module knows nothing of HTTP.
import type { DatapathView } from '../datapath/subsystem.js';
import { json, type Router } from './router.js';

/** What the routes need from the datapath subsystem. */
export interface DatapathQueries {
  view(): Promise<DatapathView>;
}

export function registerDatapathRoutes(router: Router, datapath: DatapathQueries): void {
  router.get('/v1/datapath', async () => json(await datapath.view()));
}
