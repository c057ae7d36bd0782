// The lab's state file (<stateDir>/state.json): what the keeper process built (namespaces, PIDs
// with their start times, dirs), so `down` and `status` work from any later shell.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TopologyState } from '../lib/netns.js';

export type LabPhase = 'building' | 'running' | 'failed';

export interface LabProcess {
  pid: number;
  startTime: number | null;
}

/** A node's pod: an endpoint nrd made in a namespace the keeper created. */
export interface LabPodState {
  /** Endpoint name (absent in states written before pods had labels). */
  name?: string;
  labels?: Record<string, string>;
  /** The pod's name server (answers its name on BACKEND_PORT and DB_PORT), run in its namespace. */
  server?: LabProcess;
  ns: string;
  /** The node's own pod CIDR as its API reported it. */
  cidr: string;
  /** The pod's IPv4 address, as nrd assigned it from the node's CIDR. */
  ip: string;
  /** nrd's host side of the veth (nrdv…), in the node's namespace. */
  hostIf: string;
  podIf: string;
}

/** The external host behind the ToR and its "who is calling" TCP service. */
export interface LabExtState {
  ns: string;
  address: string;
  port: number;
}

export interface LabNodeState {
  name: string;
  ns: string;
  address: string;
  asn: number;
  socket: string;
  configFile: string;
  logFile: string;
  process?: LabProcess;
  pod?: LabPodState;
  /** The node's other pods (the service client, the policy's target): not in the ping matrix. */
  extraPods?: LabPodState[];
}

export interface LabState {
  version: 1;
  name: string;
  phase: LabPhase;
  error?: string;
  updatedAt: string;
  /** The background process that owns the lab's processes (see fabric.ts). */
  keeper: LabProcess;
  keeperLog: string;
  topology: TopologyState;
  etcd?: { process: LabProcess; baseDir: string; endpoints: string[] };
  tor?: { ns: string; birdSocket: string; birdLog: string };
  nodes: LabNodeState[];
  configFiles: string[];
  /** Where the nodes' pins live (<pinRoot>/<node>): the lab's bpffs mount point. */
  pinRoot: string;
  /**
   * The bpffs the keeper mounts for the nodes, recorded just before the mount so a keeper that
   * dies half-way still leaves `down` the means to unmount it.
   */
  bpffs?: string;
  /**
   * Pods: 'waiting' while the keeper waits for the nodes' CIDRs, 'ready' once every node has its
   * pod, 'failed' (with podsError) when a node never reported a CIDR or the build failed.
   */
  pods: 'waiting' | 'ready' | 'failed';
  ext?: LabExtState;
  podsError?: string;
  /** The service and policy the keeper set once the pods were up (nrdctl service set / policy set). */
  service?: { name: string; vip: string; port: number; backendPort: number; backends: string[] };
  policy?: { name: string; file: string };
}

export function readState(file: string): LabState | null {
  if (!existsSync(file)) return null;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as LabState;
    return s.version === 1 ? s : null;
  } catch {
    return null;
  }
}

/** Atomic replace, so a reader never sees half a file. */
export function writeState(file: string, state: LabState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 2) + '\n');
  renameSync(tmp, file);
}
