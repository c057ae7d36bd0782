// A sample GET /v1/status answer shared by the nrdctl tests.
import type { StatusResponse } from '../../../daemon/api/types.js';

export function sampleStatus(over: Partial<StatusResponse> = {}): StatusResponse {
  return {
    node: 'node-a',
    version: '0.1.0',
    pid: 4242,
    startedAt: '2025-01-01T00:00:00.000Z',
    uptimeSeconds: 3725,
    ready: false,
    status: 'waiting for bgp: no peer established',
    config: {
      file: '/etc/nrd/site.yaml',
      loadedAt: '2025-01-01T00:00:00.000Z',
      node: { name: 'node-a', address: '192.0.2.11', interface: 'eth0' },
      bgp: { asn: 64512, routerId: '192.0.2.11', peers: 2, nodeMesh: false },
      routing: { mode: 'auto' },
      etcd: { endpoints: ['http://192.0.2.2:2379'], prefix: '/nrd' },
      api: { socket: '/run/nrd/nrd.sock', metrics: '127.0.0.1:9469' },
      logLevel: 'info',
    },
    reloads: { applied: 1, unchanged: 0, rejected: 2, failed: 0 },
    subsystems: [
      { name: 'api', ready: true, since: '2025-01-01T00:00:01.000Z' },
      { name: 'bgp', ready: false, reason: 'no peer established', since: '2025-01-01T00:00:01.000Z' },
    ],
    ...over,
  };
}
