// The api subsystem: serves the control API router on the unix socket from api.socket and the
// Prometheus registry on the TCP address from api.metrics ("" disables), and moves either listener
// on reload without touching the other.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import type { Router } from './router.js';
import { closeServer, closeUnix, createApiServer, listenTcp, listenUnix, type UnixListener } from './server.js';

export interface ApiSubsystemDeps {
  router: Router;
  metrics: Registry;
}

interface SocketState {
  server: http.Server;
  listener: UnixListener;
}

interface MetricsState {
  server: http.Server;
  configured: string;
  bound: AddressInfo;
}

function metricsServer(registry: Registry, log: Logger): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          log.warn({ err }, 'metrics collection failed');
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('metrics collection failed\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('nrd serves metrics on /metrics\n');
  });
}

export class ApiSubsystem implements Subsystem {
  readonly name = 'api';
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private socket: SocketState | undefined;
  private metrics: MetricsState | undefined;

  constructor(private readonly deps: ApiSubsystemDeps) {}

  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.socket = await this.openSocket(ctx.config.api.socket);
    try {
      this.metrics = await this.openMetrics(ctx.config.api.metrics);
    } catch (err) {
      await closeUnix(this.socket.server, this.socket.listener);
      this.socket = undefined;
      throw err;
    }
    this.report();
  }

  async stop(): Promise<void> {
    const s = this.socket;
    const m = this.metrics;
    this.socket = undefined;
    this.metrics = undefined;
    await Promise.all([s ? closeUnix(s.server, s.listener) : undefined, m ? closeServer(m.server) : undefined]);
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    const keys = new Set(changes.map((c) => c.key));
    // Open the new listener before closing the old one: a failed move leaves the API reachable.
    if (keys.has('api.socket') && this.socket?.listener.path !== next.api.socket) {
      const fresh = await this.openSocket(next.api.socket);
      const old = this.socket;
      this.socket = fresh;
      if (old) await closeUnix(old.server, old.listener);
      this.log?.info({ socket: next.api.socket }, 'control socket moved');
    }
    if (keys.has('api.metrics') && (this.metrics?.configured ?? '') !== next.api.metrics) {
      const old = this.metrics;
      // Same port on a new host, or the same address re-listened: close first or bind fails.
      if (old) await closeServer(old.server);
      this.metrics = undefined;
      this.metrics = await this.openMetrics(next.api.metrics);
      this.log?.info({ metrics: next.api.metrics || 'disabled' }, 'metrics listener moved');
    }
    this.report();
  }

  status(): unknown {
    return {
      socket: this.socket?.listener.path ?? null,
      metrics: this.metrics ? `${this.metrics.bound.address}:${this.metrics.bound.port}` : null,
      routes: this.deps.router.list().length,
    };
  }

  private report(): void {
    this.ready?.({ ready: this.socket !== undefined, reason: this.socket ? undefined : 'control socket not listening', detail: this.status() });
  }

  private async openSocket(path: string): Promise<SocketState> {
    const server = createApiServer(this.deps.router, this.log!);
    const listener = await listenUnix(server, path);
    this.log?.info({ socket: path }, 'control API listening');
    return { server, listener };
  }

  private async openMetrics(address: string): Promise<MetricsState | undefined> {
    if (!address) {
      this.log?.info('metrics disabled (api.metrics is empty)');
      return undefined;
    }
    const server = metricsServer(this.deps.metrics, this.log!);
    const bound = await listenTcp(server, address);
    this.log?.info({ metrics: `${bound.address}:${bound.port}` }, 'metrics listening');
    return { server, configured: address, bound };
  }
}
