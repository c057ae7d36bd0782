// nrd-cni's commands (CNI specification 1.0.0: ADD, DEL, CHECK, VERSION; 1.1.0: GC, STATUS) over
// nrd's control API (POST /v1/endpoints, GET and DELETE /v1/endpoints/:name, GET
// /v1/local/endpoints — the routes `nrdctl endpoint add/del` uses). Each command returns what the
// runtime must read: stdout text and the exit code; every failure is the spec's error object.
// The transport is a port (NrdPort) so the unit tests drive every path with a fake nrd.
import { existsSync } from 'node:fs';
import type { EndpointView, LocalEndpointsResponse } from '../endpoints/api-types.js';
import {
  buildResult,
  checkIssues,
  CNI_ERR,
  CniFailure,
  endpointLabels,
  endpointName,
  isCniEndpointName,
  NETWORK_LABEL,
  parseEnv,
  parseNetConf,
  peekVersion,
  versionInfo,
  type CniEnv,
  type CniError,
  type NetConf,
} from './spec.js';

/** One answer of nrd: the HTTP status and the JSON body. */
export interface NrdAnswer {
  status: number;
  body: unknown;
}

/** nrd's control API as the plugin uses it; rejects with NrdDown when nobody listens. */
export interface NrdPort {
  request(socket: string, method: string, path: string, body?: unknown): Promise<NrdAnswer>;
}

/** The socket is missing or refuses connections: nrd is not running (a transient condition). */
export class NrdDown extends Error {
  constructor(
    readonly socket: string,
    readonly reason: string,
  ) {
    super(`nrd is not running (${socket}: ${reason})`);
    this.name = 'NrdDown';
  }
}

export interface PluginIo {
  env: NodeJS.ProcessEnv;
  stdin: string;
  nrd: NrdPort;
  /** Diagnostics the runtime may log (never the result). */
  warn?: (line: string) => void;
  /** Injected for tests: how long to wait between retries of a conflict or an unavailable nrd. */
  sleep?: (ms: number) => Promise<void>;
}

export interface PluginOutput {
  stdout: string;
  exitCode: number;
}

/** How often ADD/DEL retry a 409 (being deleted) or a 503 (nrd starting) before "try again later". */
const RETRIES = 8;
const RETRY_MS = 250;

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runPlugin(io: PluginIo): Promise<PluginOutput> {
  const version = peekVersion(io.stdin);
  try {
    const env = parseEnv(io.env);
    if (env.command === 'VERSION') return { stdout: `${JSON.stringify(versionInfo(version))}\n`, exitCode: 0 };
    const conf = parseNetConf(io.stdin, env.command);
    const ctx = new Ctx(io, env, conf);
    switch (env.command) {
      case 'ADD':
        return { stdout: `${JSON.stringify(await ctx.add())}\n`, exitCode: 0 };
      case 'DEL':
        await ctx.del();
        return { stdout: '', exitCode: 0 };
      case 'CHECK':
        await ctx.check();
        return { stdout: '', exitCode: 0 };
      case 'GC':
        await ctx.gc();
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
        await ctx.status();
        return { stdout: '', exitCode: 0 };
    }
  } catch (e) {
    const f = e instanceof CniFailure ? e : e instanceof NrdDown ? new CniFailure(CNI_ERR.tryAgainLater, 'try again later: nrd is not running', e.message) : new CniFailure(CNI_ERR.nrdFailed, e instanceof Error ? e.message : String(e));
    const err: CniError = { cniVersion: version ?? '1.0.0', code: f.code, msg: f.message, ...(f.details ? { details: f.details } : {}) };
    return { stdout: `${JSON.stringify(err)}\n`, exitCode: 1 };
  }
}

interface ApiErrorShape {
  error?: { code?: string; message?: string };
}

function apiMessage(a: NrdAnswer): string {
  const b = a.body as ApiErrorShape | undefined;
  return b?.error?.message ?? `nrd answered HTTP ${a.status}`;
}

/** One invocation's context: the parsed input and the calls to nrd. */
class Ctx {
  private readonly name: string;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly io: PluginIo,
    private readonly env: CniEnv,
    private readonly conf: NetConf,
  ) {
    this.name = env.containerId ? endpointName(env.containerId, env.ifname) : '';
    this.sleep = io.sleep ?? defaultSleep;
  }

  private call(method: string, path: string, body?: unknown): Promise<NrdAnswer> {
    return this.io.nrd.request(this.conf.socket, method, path, body);
  }

  private path(): string {
    return `/v1/endpoints/${encodeURIComponent(this.name)}`;
  }

  /** The endpoint as nrd knows it, undefined when it does not. */
  private async get(): Promise<EndpointView | undefined> {
    const a = await this.call('GET', this.path());
    if (a.status === 200) return a.body as EndpointView;
    if (a.status === 404) return undefined;
    throw this.failure(a, 'GET');
  }

  /** Deletes the endpoint; true if nrd had it. */
  private async remove(): Promise<boolean> {
    const a = await this.call('DELETE', this.path());
    if (a.status === 200) return true;
    if (a.status === 404) return false;
    throw this.failure(a, 'DELETE');
  }

  private failure(a: NrdAnswer, what: string): CniFailure {
    const msg = `nrd refused ${what} of endpoint ${this.name}: ${apiMessage(a)}`;
    if (a.status === 503 || a.status === 409) return new CniFailure(CNI_ERR.tryAgainLater, 'try again later', msg);
    if (a.status === 400) return new CniFailure(CNI_ERR.invalidConfig, msg);
    return new CniFailure(CNI_ERR.nrdFailed, msg);
  }

  /** Runs fn again while it fails with "try again later" (nrd starting, a delete in flight). */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof CniFailure) || e.code !== CNI_ERR.tryAgainLater || attempt >= RETRIES) throw e;
        await this.sleep(RETRY_MS);
      }
    }
  }

  /**
   * ADD. The same attachment added again with the same namespace returns the existing endpoint
   * (a runtime that retries after a lost answer); with another namespace (a crash of the runtime
   * mid-ADD, then a new sandbox under the same ID) the old endpoint is replaced.
   */
  async add(): Promise<unknown> {
    const { labels, dropped } = endpointLabels(this.conf, this.env.args);
    for (const d of dropped) this.io.warn?.(`nrd-cni: label left out: ${d}`);
    const view = await this.retrying(async () => {
      const existing = await this.get();
      if (existing) {
        if (existing.netns === this.env.netns && existing.ifname === this.env.ifname && existing.state === 'ready') return existing;
        await this.remove();
      }
      const a = await this.call('POST', '/v1/endpoints', { name: this.name, netns: this.env.netns, ifname: this.env.ifname, labels });
      if (a.status === 201 || a.status === 200) return a.body as EndpointView;
      if (a.status === 409) {
        // A record nrd has not adopted yet (it just restarted) or a delete in flight: remove
        // whatever holds the name and try again.
        await this.remove().catch(() => undefined);
      }
      throw this.failure(a, 'ADD');
    });
    return buildResult(view, this.conf);
  }

  /**
   * DEL: idempotent. An unknown container or a namespace that is gone is success. With nrd not
   * running it is success only when the namespace is gone, because nrd frees the endpoint of a
   * vanished namespace itself when it runs again; otherwise "try again later".
   */
  async del(): Promise<void> {
    try {
      await this.retrying(() => this.remove());
    } catch (e) {
      if (e instanceof NrdDown && (this.env.netns === '' || !existsSync(this.env.netns))) {
        this.io.warn?.(`nrd-cni: ${e.message}; ${this.name} is freed when nrd starts (its namespace is gone)`);
        return;
      }
      throw e;
    }
  }

  /** CHECK: the endpoint exists, is plumbed, and matches the namespace, ifname and prevResult. */
  async check(): Promise<void> {
    const view = await this.get();
    if (!view) throw new CniFailure(CNI_ERR.checkFailed, `nrd has no endpoint ${this.name} for container ${this.env.containerId}`);
    const issues = checkIssues(view, this.env, this.conf);
    if (issues.length) throw new CniFailure(CNI_ERR.checkFailed, issues.join('; '));
  }

  /** GC (CNI 1.1): deletes this network's CNI endpoints that no valid attachment names. */
  async gc(): Promise<void> {
    const keep = new Set((this.conf.validAttachments ?? []).map((a) => endpointName(a.containerID, a.ifname)));
    const a = await this.call('GET', '/v1/local/endpoints');
    if (a.status !== 200) throw this.failure(a, 'GC (list)');
    const list = a.body as LocalEndpointsResponse;
    // Before nrd's list is complete an absent endpoint proves nothing; the same holds for GC.
    if (!list.synced) throw new CniFailure(CNI_ERR.tryAgainLater, 'try again later', 'nrd has not synced its endpoint list yet');
    for (const ep of list.endpoints) {
      if (!isCniEndpointName(ep.name) || keep.has(ep.name) || ep.labels[NETWORK_LABEL] !== this.conf.name) continue;
      const d = await this.call('DELETE', `/v1/endpoints/${encodeURIComponent(ep.name)}`);
      if (d.status !== 200 && d.status !== 404) throw this.failure(d, `GC of ${ep.name}`);
    }
  }

  /** STATUS (CNI 1.1): ready to serve ADD when nrd answers and its endpoint list is synced. */
  async status(): Promise<void> {
    let a: NrdAnswer;
    try {
      a = await this.call('GET', '/v1/local/endpoints');
    } catch (e) {
      if (e instanceof NrdDown) throw new CniFailure(CNI_ERR.notAvailable, 'nrd is not running', e.message);
      throw e;
    }
    if (a.status !== 200) throw new CniFailure(CNI_ERR.notAvailable, 'nrd cannot serve endpoints now', apiMessage(a));
    if (!(a.body as LocalEndpointsResponse).synced) throw new CniFailure(CNI_ERR.notAvailable, 'nrd has not synced its endpoint list yet');
  }
}
