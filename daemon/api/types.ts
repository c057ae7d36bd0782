// Shapes of the control API's JSON bodies (HTTP+JSON on nrd's unix socket), shared by the daemon
// that produces them and nrdctl that prints them. Additive changes only: nrdctl of version N must
// read the answers of nrd N+1.

/** Body of every error answer: a stable machine code and a sentence for humans. */
export interface ApiErrorBody {
  error: { code: string; message: string; detail?: unknown };
}

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

export interface ReadyzResponse {
  ready: boolean;
  /** Not-ready subsystems in start order, each with its reason. */
  notReady: Array<{ name: string; reason?: string; detail?: unknown }>;
}
