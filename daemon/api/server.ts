// HTTP/1.1 shell around the Router: the control socket (AF_UNIX stream, mode 0600, parent dir
// 0755) with stale-socket takeover, and a TCP listener for Prometheus scrapes.
import * as http from 'node:http';
import * as net from 'node:net';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../lib/log.js';
import { MAX_BODY_BYTES, errorBody, type ApiStream, type Router } from './router.js';

// BPF counters are 64-bit (bigint): JSON numbers while exact, decimal strings beyond 2^53.
function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  let text: string;
  try {
    text = JSON.stringify(body, jsonReplacer) + '\n';
  } catch (err) {
    // A body that cannot be serialised is a bug of nrd's, never a reason to take the daemon down.
    status = 500;
    text = JSON.stringify(errorBody('internal', `response not serialisable: ${(err as Error).message}`)) + '\n';
  }
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Bytes a streaming answer may have queued for a slow reader before further chunks are dropped:
 * a monitor that does not read must not grow the daemon's memory without bound.
 */
export const MAX_STREAM_BACKLOG = 1 << 20;

/** Sends a streaming answer (chunked transfer) until it ends or the client goes away. */
function sendStream(req: http.IncomingMessage, res: http.ServerResponse, status: number, stream: ApiStream, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': stream.contentType, 'cache-control': 'no-store', ...headers });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  // Headers now, not with the first chunk: the client knows the stream is open while it is quiet.
  res.flushHeaders();
  let cleanup: (() => void) | undefined;
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    cleanup?.();
  };
  res.once('close', finish);
  cleanup = stream.open({
    write(chunk) {
      if (closed || res.writableEnded || res.writableLength > MAX_STREAM_BACKLOG) return false;
      res.write(chunk);
      return true;
    },
    end() {
      if (!res.writableEnded) res.end();
    },
  });
  if (closed) cleanup();
}

/** An http.Server that answers every request through the router. */
export function createApiServer(router: Router, log: Logger): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    // 413 as soon as the body is known to be too large: from Content-Length before reading any of
    // it, else (chunked) when the bytes read pass the limit. The connection closes once the answer
    // is out, so the rest of the body is never read.
    const refuse = (): void => {
      refused = true;
      res.once('finish', () => req.destroy());
      send(res, 413, errorBody('payload_too_large', `request body above ${MAX_BODY_BYTES} bytes`), { connection: 'close' });
    };
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) refuse();
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        refuse();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (refused) return;
      const raw = { method: req.method ?? 'GET', url: req.url ?? '/', body: Buffer.concat(chunks).toString('utf8') };
      router.handle(raw).then(
        (r) => {
          if (r.status >= 500) log.warn({ method: raw.method, url: raw.url, status: r.status, body: r.body }, 'api request failed');
          else log.debug({ method: raw.method, url: raw.url, status: r.status }, 'api request');
          if (r.stream) sendStream(req, res, r.status, r.stream, r.headers);
          else send(res, r.status, r.body, r.headers);
        },
        (err: unknown) => {
          // Router.handle does not throw; this is a last line of defence.
          log.error({ err }, 'api handler crashed');
          send(res, 500, errorBody('internal', 'internal error'));
        },
      );
    });
    req.on('error', (err) => log.debug({ err }, 'api request stream error'));
  });
}

/** True when something accepts connections on the unix socket at path. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(err);
    });
  });
}

export class SocketInUseError extends Error {
  readonly code = 'NRD_API_SOCKET_IN_USE';
  constructor(readonly path: string) {
    super(`another process is serving ${path} (is nrd already running?)`);
  }
}

/** Identity of the socket file we created, so that stop removes ours and never a successor's. */
export interface UnixListener {
  path: string;
  ino: number;
}

/**
 * Listens on a unix socket path: creates the parent directory (0755), replaces a stale socket
 * left by a dead daemon, refuses a live one or a non-socket file, and leaves the socket 0600.
 */
export async function listenUnix(server: http.Server, path: string): Promise<UnixListener> {
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await fs.lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket: refusing to replace it`);
    if (await socketIsLive(path)) throw new SocketInUseError(path);
    await fs.unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  // bind(2) creates the socket file with the process umask: narrow it for the bind so the socket
  // is never reachable by others, even in the instant before chmod. listen() binds synchronously.
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
      process.umask(oldMask);
    });
  } finally {
    process.umask(oldMask);
  }
  await fs.chmod(path, 0o600);
  const st = await fs.stat(path);
  return { path, ino: st.ino };
}

/** Closes the server, drops idle keep-alive connections, and removes our socket file. */
export async function closeUnix(server: http.Server, listener: UnixListener | undefined): Promise<void> {
  await closeServer(server);
  if (!listener) return;
  const st = await fs.lstat(listener.path).catch(() => undefined);
  if (st && st.ino === listener.ino) await fs.unlink(listener.path).catch(() => undefined);
}

export function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Parses "host:port" or "[v6]:port" (the api.metrics form). */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new Error(`not a host:port address: ${JSON.stringify(s)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in ${JSON.stringify(s)}`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Listens on a TCP host:port; resolves with the bound address (port 0 picks a free port). */
export function listenTcp(server: http.Server, hostPort: string): Promise<net.AddressInfo> {
  const { host, port } = parseHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
