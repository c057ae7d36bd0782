// The pure core of nrd-cni, the CNI plugin (Container Network Interface specification 1.0.0, with
// GC and STATUS of 1.1.0): the CNI_* environment and the network configuration parsed and checked
// into typed requests or spec error objects, the endpoint name derived from (container ID, ifname),
// the endpoint labels, and the spec's ADD result built from nrd's endpoint view (chained onto a
// prevResult). No I/O here: the unit tests call every function directly.
import { createHash } from 'node:crypto';
import type { EndpointView } from '../endpoints/api-types.js';
import { ifnameIssue } from '../endpoints/model.js';
import { isValidEndpointId, validateLabels, type Labels } from '../state/records.js';

/** The versions whose configuration and result formats nrd-cni reads and writes. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The well-known error codes of the spec ("Error" section); 100+ are this plugin's own. */
export const CNI_ERR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  ioFailure: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** CNI 1.1 STATUS: the plugin cannot serve ADD now. */
  notAvailable: 50,
  /** nrd refused or failed the request for a reason that retrying does not fix. */
  nrdFailed: 100,
  /** CHECK found the endpoint missing or different from what the runtime expects. */
  checkFailed: 101,
} as const;

/** The spec's error object, printed on stdout with a non-zero exit. */
export interface CniError {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** A failure that becomes a CniError (the version is filled in where it is known). */
export class CniFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message);
    this.name = 'CniFailure';
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** The CNI_* variables as a command needs them. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** '' when absent (allowed for DEL: the namespace may be gone). */
  netns: string;
  ifname: string;
  args: Record<string, string>;
  path: string;
}

// The spec's rule for container IDs: alphanumeric first, then alphanumerics, '_', '.', '-'.
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// The spec's rule for network names.
const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** CNI_ARGS: `K=V;K2=V2` (values may be empty; a pair without '=' is an error). */
export function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === '') return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniFailure(CNI_ERR.invalidEnv, `CNI_ARGS: "${pair}" is not KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Reads and checks the CNI_* variables. The spec lists CNI_CONTAINERID, CNI_IFNAME and CNI_NETNS
 * as required for ADD and CHECK; DEL needs the first two (the namespace may be gone). CNI_PATH is
 * required by the spec, but nrd-cni delegates to no other plugin, so its absence is tolerated.
 */
export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const cmd = env.CNI_COMMAND ?? '';
  if (!(COMMANDS as readonly string[]).includes(cmd)) throw new CniFailure(CNI_ERR.invalidEnv, cmd === '' ? 'CNI_COMMAND is not set' : `CNI_COMMAND "${cmd}" is not one of ${COMMANDS.join(', ')}`);
  const command = cmd as CniCommand;
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  if (perContainer) {
    const bad: string[] = [];
    if (!CONTAINER_ID_RE.test(containerId)) bad.push(containerId === '' ? 'CNI_CONTAINERID is not set' : `CNI_CONTAINERID "${containerId}" is not a container ID (letters, digits, '_', '.', '-')`);
    if (ifname === '') bad.push('CNI_IFNAME is not set');
    else {
      const issue = ifnameIssue(ifname);
      if (issue) bad.push(`CNI_IFNAME: ${issue}`);
    }
    if (command !== 'DEL') {
      if (netns === '') bad.push('CNI_NETNS is not set');
      else if (!netns.startsWith('/')) bad.push(`CNI_NETNS "${netns}" is not an absolute path`);
    }
    if (bad.length) throw new CniFailure(CNI_ERR.invalidEnv, bad.join('; '));
  }
  return { command, containerId, netns, ifname, args: parseCniArgs(env.CNI_ARGS ?? ''), path: env.CNI_PATH ?? '' };
}

/** A network configuration as nrd-cni reads it (unknown keys are allowed and ignored). */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** nrd's control socket. */
  socket: string;
  /** Labels every endpoint of this network gets. */
  labels: Labels;
  dns: Record<string, unknown>;
  /** The previous plugin's result, when chained (ADD, CHECK, DEL). */
  prevResult?: CniResult;
  runtimeConfig: Record<string, unknown>;
  args: Record<string, unknown>;
  /** GC (CNI 1.1): the attachments the runtime still uses. */
  validAttachments?: Array<{ containerID: string; ifname: string }>;
  /** The text the runtime sent, for error messages. */
  raw: Record<string, unknown>;
}

export const DEFAULT_SOCKET = '/run/nrd/nrd.sock';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads only the version (enough for VERSION, and for an error object in the runtime's version). */
export function peekVersion(stdin: string): string | undefined {
  try {
    const o: unknown = JSON.parse(stdin);
    return isObject(o) && typeof o.cniVersion === 'string' ? o.cniVersion : undefined;
  } catch {
    return undefined;
  }
}

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Numeric comparison of two dotted versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Parses and checks the network configuration of one plugin invocation (stdin). */
export function parseNetConf(stdin: string, command: CniCommand): NetConf {
  let o: unknown;
  try {
    o = JSON.parse(stdin);
  } catch (e) {
    throw new CniFailure(CNI_ERR.decode, 'the network configuration on stdin is not JSON', e instanceof Error ? e.message : String(e));
  }
  if (!isObject(o)) throw new CniFailure(CNI_ERR.decode, 'the network configuration on stdin is not a JSON object');
  const bad = (msg: string): never => {
    throw new CniFailure(CNI_ERR.invalidConfig, msg);
  };
  if (typeof o.cniVersion !== 'string' || o.cniVersion === '') bad('cniVersion: required, a string');
  const version = o.cniVersion as string;
  if (!isSupportedVersion(version)) throw new CniFailure(CNI_ERR.incompatibleVersion, `cniVersion ${version} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  if (command === 'CHECK' && compareVersions(version, '0.4.0') < 0) throw new CniFailure(CNI_ERR.incompatibleVersion, `CHECK needs cniVersion 0.4.0 or later, the configuration says ${version}`);
  if ((command === 'GC' || command === 'STATUS') && compareVersions(version, '1.1.0') < 0) throw new CniFailure(CNI_ERR.incompatibleVersion, `${command} needs cniVersion 1.1.0, the configuration says ${version}`);
  if (typeof o.name !== 'string' || !NETWORK_NAME_RE.test(o.name)) bad(`name: ${JSON.stringify(o.name)} is not a network name (letters, digits, '_', '.', '-')`);
  if (typeof o.type !== 'string' || o.type === '') bad('type: required, the plugin binary name');
  const socket = o.socket ?? DEFAULT_SOCKET;
  if (typeof socket !== 'string' || !socket.startsWith('/')) bad(`socket: ${JSON.stringify(socket)} is not an absolute path`);
  let labels: Labels = {};
  if (o.labels !== undefined) {
    const l = validateLabels('labels', o.labels);
    if (!l.ok) bad(l.reason);
    else labels = l.value;
  }
  if (o.dns !== undefined && !isObject(o.dns)) bad('dns: expected an object');
  if (o.runtimeConfig !== undefined && !isObject(o.runtimeConfig)) bad('runtimeConfig: expected an object');
  if (o.args !== undefined && !isObject(o.args)) bad('args: expected an object');
  const conf: NetConf = {
    cniVersion: version,
    name: o.name as string,
    type: o.type as string,
    socket: socket as string,
    labels,
    dns: (o.dns as Record<string, unknown> | undefined) ?? {},
    runtimeConfig: (o.runtimeConfig as Record<string, unknown> | undefined) ?? {},
    args: (o.args as Record<string, unknown> | undefined) ?? {},
    raw: o,
  };
  if (o.prevResult !== undefined) conf.prevResult = parseResult(o.prevResult, 'prevResult');
  if (command === 'GC') {
    const va = o['cni.dev/valid-attachments'] ?? [];
    if (!Array.isArray(va)) bad('cni.dev/valid-attachments: expected a list');
    conf.validAttachments = (va as unknown[]).map((a, i) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') return bad(`cni.dev/valid-attachments[${i}]: expected {containerID, ifname}`);
      return { containerID: a.containerID, ifname: a.ifname };
    });
  }
  return conf;
}

// ---- endpoint naming and labels ---------------------------------------------------------------

/** Every endpoint nrd-cni creates has a name with one of these prefixes (GC touches no other). */
export const NAME_PREFIX = 'cni:';
export const HASHED_PREFIX = 'cnih:';
/** The label naming the CNI network an endpoint belongs to (GC of one network spares the others). */
export const NETWORK_LABEL = 'cni.nrd.io/network';

/**
 * The endpoint of one attachment: `cni:<container ID>:<ifname>` — readable in `nrdctl endpoints`,
 * and unambiguous since neither part may hold ':'. When that breaks the endpoint name rule (more
 * than 128 characters), `cnih:` and 40 hex digits of SHA-256 over both parts instead.
 */
export function endpointName(containerId: string, ifname: string): string {
  const plain = `${NAME_PREFIX}${containerId}:${ifname}`;
  if (isValidEndpointId(plain)) return plain;
  return HASHED_PREFIX + createHash('sha256').update(`${containerId}\0${ifname}`, 'utf8').digest('hex').slice(0, 40);
}

export function isCniEndpointName(name: string): boolean {
  return name.startsWith(NAME_PREFIX) || name.startsWith(HASHED_PREFIX);
}

/** Labels that do not pass nrd's label rules are left out (and said on stderr), never fatal. */
export interface LabelSet {
  labels: Labels;
  dropped: string[];
}

/**
 * The endpoint's labels, later sources winning: the network's static `labels`, the network name,
 * the Kubernetes pod namespace and name from CNI_ARGS (as the CRI runtimes pass them), the
 * conventions' `args.cni.labels` list, and `runtimeConfig.labels` (a map, e.g. annotations a
 * runtime hands through).
 */
export function endpointLabels(conf: NetConf, args: Record<string, string>): LabelSet {
  const cand: Array<[string, unknown]> = Object.entries(conf.labels);
  cand.push([NETWORK_LABEL, conf.name]);
  if (args.K8S_POD_NAMESPACE) cand.push(['io.kubernetes.pod.namespace', args.K8S_POD_NAMESPACE]);
  if (args.K8S_POD_NAME) cand.push(['io.kubernetes.pod.name', args.K8S_POD_NAME]);
  const cniArgs = conf.args.cni;
  if (isObject(cniArgs) && Array.isArray(cniArgs.labels)) {
    for (const l of cniArgs.labels as unknown[]) if (isObject(l) && typeof l.key === 'string') cand.push([l.key, l.value]);
  }
  if (isObject(conf.runtimeConfig.labels)) cand.push(...Object.entries(conf.runtimeConfig.labels));
  const labels: Labels = {};
  const dropped: string[] = [];
  for (const [k, v] of cand) {
    const one = validateLabels('label', { [k]: v });
    if (one.ok) labels[k] = v as string;
    else dropped.push(one.reason);
  }
  return { labels, dropped };
}

// ---- results ----------------------------------------------------------------------------------

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}
export interface CniIp {
  address: string;
  gateway?: string;
  interface?: number;
  /** Only in results of 0.3.x and 0.4.0. */
  version?: '4' | '6';
}
export interface CniRoute {
  dst: string;
  gw?: string;
}
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
}

/** Reads a prevResult into the typed shape, refusing what is not a result. */
export function parseResult(v: unknown, where: string): CniResult {
  const bad = (msg: string): never => {
    throw new CniFailure(CNI_ERR.invalidConfig, `${where}: ${msg}`);
  };
  if (!isObject(v)) return bad('expected a result object');
  const r: CniResult = { cniVersion: typeof v.cniVersion === 'string' ? v.cniVersion : '' };
  if (v.interfaces !== undefined) {
    if (!Array.isArray(v.interfaces)) bad('interfaces: expected a list');
    r.interfaces = (v.interfaces as unknown[]).map((i, n) => {
      if (!isObject(i) || typeof i.name !== 'string') return bad(`interfaces[${n}]: expected {name, mac?, sandbox?}`);
      return { ...(i as unknown as CniInterface) };
    });
  }
  if (v.ips !== undefined) {
    if (!Array.isArray(v.ips)) bad('ips: expected a list');
    r.ips = (v.ips as unknown[]).map((i, n) => {
      if (!isObject(i) || typeof i.address !== 'string') return bad(`ips[${n}]: expected {address, gateway?, interface?}`);
      return { ...(i as unknown as CniIp) };
    });
  }
  if (v.routes !== undefined) {
    if (!Array.isArray(v.routes)) bad('routes: expected a list');
    r.routes = (v.routes as unknown[]).map((i, n) => {
      if (!isObject(i) || typeof i.dst !== 'string') return bad(`routes[${n}]: expected {dst, gw?}`);
      return { ...(i as unknown as CniRoute) };
    });
  }
  if (v.dns !== undefined) {
    if (!isObject(v.dns)) bad('dns: expected an object');
    r.dns = { ...(v.dns as Record<string, unknown>) };
  }
  return r;
}

const isV6 = (ip: string): boolean => ip.includes(':');

/**
 * The ADD result: the host veth (no sandbox) and the workload's interface (with its namespace),
 * one /32 or /128 per address with the link-local gateway, default routes of each family via that
 * gateway, and the network's DNS. Chained, the previous result's entries come first and the
 * interface index counts them. Results of 0.3.x/0.4.0 carry the per-address "version" those
 * formats require.
 */
export function buildResult(view: EndpointView, conf: NetConf): CniResult {
  const prev = conf.prevResult;
  const interfaces: CniInterface[] = [...(prev?.interfaces ?? [])];
  interfaces.push({ name: view.hostIfname, mac: view.gatewayMac });
  interfaces.push({ name: view.ifname, ...(view.mac ? { mac: view.mac } : {}), sandbox: view.netns });
  const index = interfaces.length - 1;
  const legacy = compareVersions(conf.cniVersion, '1.0.0') < 0;
  const ips: CniIp[] = [...(prev?.ips ?? [])];
  view.ips.forEach((ip, i) => {
    const gw = view.gateways[i];
    ips.push({ ...(legacy ? { version: isV6(ip) ? '6' : '4' } : {}), address: `${ip}/${isV6(ip) ? 128 : 32}`, ...(gw ? { gateway: gw } : {}), interface: index });
  });
  const routes: CniRoute[] = [...(prev?.routes ?? [])];
  for (const [i, ip] of view.ips.entries()) {
    const dst = isV6(ip) ? '::/0' : '0.0.0.0/0';
    const gw = view.gateways[i];
    if (!routes.some((r) => r.dst === dst)) routes.push({ dst, ...(gw ? { gw } : {}) });
  }
  return { cniVersion: conf.cniVersion, interfaces, ips, routes, dns: { ...(prev?.dns ?? {}), ...conf.dns } };
}

/** CHECK: what of the endpoint differs from the runtime's expectation ([] = all is well). */
export function checkIssues(view: EndpointView, env: CniEnv, conf: NetConf): string[] {
  const issues: string[] = [];
  if (view.state !== 'ready') issues.push(`endpoint ${view.name} is ${view.state}${view.error ? `: ${view.error}` : ''}`);
  if (view.netns !== env.netns) issues.push(`endpoint ${view.name} is in netns ${view.netns}, not ${env.netns}`);
  if (view.ifname !== env.ifname) issues.push(`endpoint ${view.name} has interface ${view.ifname}, not ${env.ifname}`);
  const prev = conf.prevResult;
  if (prev) {
    const have = new Set((prev.ips ?? []).map((i) => i.address.split('/')[0]));
    for (const ip of view.ips) if (!have.has(ip)) issues.push(`address ${ip} of ${view.name} is not in prevResult`);
    const sandboxIf = (prev.interfaces ?? []).find((i) => i.name === env.ifname && i.sandbox !== undefined);
    if (!sandboxIf) issues.push(`prevResult has no interface ${env.ifname} in a sandbox`);
    else if (view.mac && sandboxIf.mac && sandboxIf.mac.toLowerCase() !== view.mac) issues.push(`interface ${env.ifname} has MAC ${view.mac}, prevResult says ${sandboxIf.mac}`);
  }
  return issues;
}

/** The VERSION answer (in the version the runtime asked in, when it is one of ours). */
export function versionInfo(requested: string | undefined): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: requested && isSupportedVersion(requested) ? requested : '1.0.0', supportedVersions: [...SUPPORTED_VERSIONS] };
}
