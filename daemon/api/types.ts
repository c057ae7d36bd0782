// Shapes of the control API's JSON bodies (HTTP+JSON on nrd's unix socket), shared by the daemon
// that produces them and nrdctl that prints them. Additive changes only: nrdctl of version N must
// read the answers of nrd N+1.

/** Body of every error answer: a stable machine code and a sentence for humans. */
export interface ApiErrorBody {
  error: { code: string; message: string; detail?: unknown };
}

export type { ConfigSummary, ReloadInfo, ReloadResult, StatusResponse, SubsystemStatus } from '../lib/status.js';

export interface ReadyzResponse {
  ready: boolean;
  /** Not-ready subsystems in start order, each with its reason. */
  notReady: Array<{ name: string; reason?: string; detail?: unknown }>;
}
