// nrdctl's side of the control API: one HTTP+JSON request over nrd's unix socket, with the
// "daemon not running" and "not allowed" cases told apart from API errors.
import * as http from 'node:http';
import type { ApiErrorBody } from '../api/types.js';

export const DEFAULT_SOCKET = '/run/nrd/nrd.sock';

export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  return env.NRD_SOCKET || DEFAULT_SOCKET;
}

/** nrd is not running (no socket, or nobody accepting on it). */
export class DaemonNotRunningError extends Error {
  constructor(
    readonly socket: string,
    readonly code: string,
  ) {
    super(`nrd is not running (no daemon listening on ${socket}: ${code})`);
    this.name = 'DaemonNotRunningError';
  }
}

/** The socket exists but this user may not use it (it is 0600, root only). */
export class SocketAccessError extends Error {
  constructor(readonly socket: string) {
    super(`permission denied on ${socket}: the control socket is root only (try sudo)`);
    this.name = 'SocketAccessError';
  }
}

/** The daemon answered with an error body. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

export interface ApiClientResponse {
  status: number;
  body: unknown;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
}

/** Sends one request; resolves for every HTTP status, rejects for transport failures. */
export function rawRequest(socket: string, path: string, opts: RequestOptions = {}): Promise<ApiClientResponse> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        path,
        method: opts.method ?? 'GET',
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text.length > 0 ? JSON.parse(text) : undefined;
          } catch {
            // Not JSON: hand the text through; the caller reports it.
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from nrd on ${socket} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') reject(new DaemonNotRunningError(socket, err.code));
      else if (err.code === 'EACCES' || err.code === 'EPERM') reject(new SocketAccessError(socket));
      else reject(err);
    });
    req.end(payload);
  });
}

function isErrorBody(b: unknown): b is ApiErrorBody {
  return typeof b === 'object' && b !== null && typeof (b as ApiErrorBody).error?.code === 'string';
}

/**
 * GETs (or sends) and returns the body of a 2xx answer. A non-2xx answer rejects with
 * ApiRequestError, except the statuses listed in `accept` (e.g. 503 from /readyz).
 */
export async function apiRequest<T>(socket: string, path: string, opts: RequestOptions & { accept?: number[] } = {}): Promise<T> {
  const res = await rawRequest(socket, path, opts);
  if ((res.status >= 200 && res.status < 300) || opts.accept?.includes(res.status)) return res.body as T;
  if (isErrorBody(res.body)) throw new ApiRequestError(res.status, res.body.error.code, res.body.error.message, res.body);
  throw new ApiRequestError(res.status, 'unexpected', `nrd answered HTTP ${res.status}`, res.body);
}

/**
 * A streaming GET (NDJSON, e.g. /v1/monitor): calls onLine with each parsed line as it arrives and
 * resolves when the daemon ends the stream or `signal` aborts (the request is then closed, which
 * is how the daemon learns the client went away). A non-2xx answer rejects with ApiRequestError.
 * No timeout: a quiet stream is a healthy one.
 */
export function streamRequest(socket: string, path: string, onLine: (value: unknown) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const req = http.request({ socketPath: socket, path, method: 'GET', headers: { accept: 'application/x-ndjson' } }, (res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let partial = '';
      res.on('data', (c: Buffer) => {
        if (status < 200 || status >= 300) {
          chunks.push(c);
          return;
        }
        partial += c.toString('utf8');
        let nl: number;
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl).trim();
          partial = partial.slice(nl + 1);
          if (line.length === 0) continue;
          try {
            onLine(JSON.parse(line));
          } catch (err) {
            req.destroy(err as Error);
            return;
          }
        }
      });
      res.on('end', () => {
        if (status >= 200 && status < 300) {
          resolve();
          return;
        }
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: reported as is
        }
        if (isErrorBody(body)) reject(new ApiRequestError(status, body.error.code, body.error.message, body));
        else reject(new ApiRequestError(status, 'unexpected', `nrd answered HTTP ${status}`, body));
      });
      res.on('error', (err) => (signal?.aborted ? resolve() : reject(err)));
    });
    const onAbort = (): void => {
      req.destroy();
      resolve();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (signal?.aborted) resolve();
      else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') reject(new DaemonNotRunningError(socket, err.code));
      else if (err.code === 'EACCES' || err.code === 'EPERM') reject(new SocketAccessError(socket));
      else reject(err);
    });
    req.end();
  });
}
