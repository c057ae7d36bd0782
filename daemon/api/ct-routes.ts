// HTTP mapping of the service connection table (nrd_ct, bpf/include/nrd_lb.h): GET /v1/ct lists
// the entries (both directions of each flow, optionally one service's: ?service=NAME) and DELETE
// /v1/ct flushes them (all, or one service's). A flushed TCP connection's next packet finds no
// entry and is treated as new: a non-SYN segment then reaches a backend without the connection.
import type { CtRow } from '../datapath/services.js';
import { CT_STATE_NAMES } from '../datapath/services.js';
import { json, type Router } from './router.js';

/** One nrd_ct entry as the API shows it: the service by name, the TCP state by name. */
export interface CtEntryView extends Omit<CtRow, 'state' | 'proto'> {
  protocol: string;
  service: string | null;
  state: string;
}

export interface CtListResponse {
  entries: CtEntryView[];
}

export interface CtFlushResponse {
  deleted: number;
}

/** What the routes need from the datapath subsystem. */
export interface CtQueries {
  ctList(service?: string): Promise<CtRow[]>;
  ctFlush(service?: string): Promise<number>;
  serviceStatus(): ReadonlyMap<string, { id: number }>;
}

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp' };

export function registerCtRoutes(router: Router, dp: CtQueries): void {
  router.get('/v1/ct', async (req) => {
    const rows = await dp.ctList(req.query.get('service') ?? undefined);
    const names = new Map([...dp.serviceStatus()].map(([name, s]) => [s.id, name]));
    const entries = rows.map(({ state, proto, ...r }) => ({
      ...r,
      protocol: PROTO_NAMES[proto] ?? String(proto),
      service: names.get(r.serviceId) ?? null,
      state: CT_STATE_NAMES[state] ?? String(state),
    }));
    return json({ entries } satisfies CtListResponse);
  });
  router.add('DELETE', '/v1/ct', async (req) => json({ deleted: await dp.ctFlush(req.query.get('service') ?? undefined) } satisfies CtFlushResponse));
}
