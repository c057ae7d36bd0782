// What the lifecycle reports about itself (GET /v1/status, systemd STATUS=): the node, the
// running config's summary, reloads and every subsystem's readiness. The control API serves these
// shapes as they are; nrdctl reads them (additive changes only).

export interface SubsystemStatus {
  name: string;
  ready: boolean;
  /** Why not ready, when not ready (or a note when ready). */
  reason?: string;
  /** When readiness last changed (ISO 8601). */
  since: string;
  detail?: unknown;
  /** The subsystem's own status object. */
  status?: unknown;
}

/** The parts of the running config worth showing an operator (never secrets). */
export interface ConfigSummary {
  file: string;
  loadedAt: string;
  node: { name: string; address: string; interface: string };
  bgp: { asn: number; routerId: string; peers: number; nodeMesh: boolean };
  routing: { mode: string };
  etcd: { endpoints: string[]; prefix: string };
  api: { socket: string; metrics: string };
  logLevel: string;
}

export type ReloadResult = 'applied' | 'unchanged' | 'rejected' | 'failed';

export interface ReloadInfo {
  at: string;
  result: ReloadResult;
  /** Changed keys (applied/failed) or config issues (rejected), one line each. */
  messages: string[];
}

export interface StatusResponse {
  node: string;
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  ready: boolean;
  /** One line, the same text systemd shows as the unit's Status. */
  status: string;
  config: ConfigSummary;
  reloads: Record<ReloadResult, number>;
  lastReload?: ReloadInfo;
  subsystems: SubsystemStatus[];
}
