// Core endpoints of the control API: /healthz (liveness), /readyz (readiness with reasons),
// /v1/status (what the node is and how it is), /v1 (route discovery).
import type { ReadinessRegistry } from '../lib/health.js';
import { json, type Router } from './router.js';
import type { ReadyzResponse, StatusResponse } from './types.js';

export interface CoreRouteDeps {
  status: () => StatusResponse;
  readiness: ReadinessRegistry;
}

export function readyzBody(readiness: ReadinessRegistry): ReadyzResponse {
  const snap = readiness.snapshot();
  return {
    ready: snap.ready,
    notReady: snap.subsystems
      .filter((s) => !s.ready)
      .map((s) => {
        const e: ReadyzResponse['notReady'][number] = { name: s.name };
        if (s.reason !== undefined) e.reason = s.reason;
        if (s.detail !== undefined) e.detail = s.detail;
        return e;
      }),
  };
}

export function registerCoreRoutes(router: Router, deps: CoreRouteDeps): void {
  // Liveness: answering at all is the proof; no dependency is consulted, so a broken etcd never
  // gets the process restarted.
  router.get('/healthz', () => json({ ok: true }));
  router.get('/readyz', () => {
    const body = readyzBody(deps.readiness);
    return json(body, body.ready ? 200 : 503);
  });
  router.get('/v1/status', () => json(deps.status()));
  router.get('/v1', () => json({ routes: router.list() }));
}
