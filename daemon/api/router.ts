// Route registry of the control API (HTTP+JSON, RFC 9110 semantics for 404/405/400): pure request
// → response dispatch with no sockets, so later subsystems add /v1/peers, /v1/routes, … and tests
// drive it without a server.
import type { ApiErrorBody } from './types.js';
import { NrdError, type FailureKind } from '../lib/errors.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ApiRequest {
  method: string;
  /** Path without the query string, e.g. /v1/peers/192.0.2.1 */
  path: string;
  query: URLSearchParams;
  /** Named path parameters (":address" segments), decoded. */
  params: Record<string, string>;
  /** Parsed JSON body, undefined when the request had none. */
  body: unknown;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** A streaming answer (server.ts): body is ignored, the stream writes chunks until it ends or the client goes. */
  stream?: ApiStream;
}

/** Where a streaming answer writes: false from write() means the chunk was dropped (a slow client). */
export interface StreamSink {
  write(chunk: string): boolean;
  end(): void;
}

/**
 * A streaming answer, sent with chunked transfer (e.g. NDJSON for GET /v1/monitor). open() runs
 * once the headers are out and returns the cleanup, which runs exactly once: when the stream ends,
 * the client goes away, or the server closes.
 */
export interface ApiStream {
  contentType: string;
  open(sink: StreamSink): () => void;
}

export function streamResponse(stream: ApiStream, status = 200): ApiResponse {
  return { status, body: undefined, stream };
}

export type Handler = (req: ApiRequest) => ApiResponse | Promise<ApiResponse>;

/** A failure with a stable code, turned into `{error:{code,message}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** HTTP status of each domain failure kind (RFC 9110 §15). */
export const STATUS_OF_KIND: Readonly<Record<FailureKind, number>> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503 };

export function errorBody(code: string, message: string, detail?: unknown): ApiErrorBody {
  return detail === undefined ? { error: { code, message } } : { error: { code, message, detail } };
}

export function json(body: unknown, status = 200, headers?: Record<string, string>): ApiResponse {
  return headers ? { status, body, headers } : { status, body };
}

interface Route {
  method: Method;
  pattern: string;
  segments: string[];
  handler: Handler;
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function match(route: Route, segments: string[]): Record<string, string> | undefined {
  if (route.segments.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const want = route.segments[i]!;
    const got = segments[i]!;
    if (want.startsWith(':')) {
      try {
        params[want.slice(1)] = decodeURIComponent(got);
      } catch {
        return undefined; // malformed %-escape: no route matches it
      }
    } else if (want !== got) return undefined;
  }
  return params;
}

/** Bodies above this are refused (413): the API takes small JSON commands, never bulk data. */
export const MAX_BODY_BYTES = 1 << 20;

/**
 * Deepest nesting of arrays and objects a body may have. Handlers, validators and the logger walk
 * bodies recursively; a deeper body (`[[[[…]]]]` fits a megabyte a hundred thousand times over)
 * would overflow their stack and answer 500 for what is bad input. nrd's commands nest a few levels.
 */
export const MAX_BODY_DEPTH = 64;

/**
 * Whether JSON text nests arrays/objects deeper than `max`: one pass over the text, brackets in
 * strings skipped, so that neither JSON.parse nor anything after it sees such a body. Valid or not:
 * an unclosed `[[[[` is refused for its depth, which is the more useful reason.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* backslash: skips the escaped character */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}

export interface RawRequest {
  method: string;
  url: string;
  /** The raw body text ('' when none). */
  body: string;
}

export class Router {
  private readonly routes: Route[] = [];

  /** Registers a handler. Later registrations of the same method+pattern are a bug: refused. */
  add(method: Method, pattern: string, handler: Handler): this {
    if (!pattern.startsWith('/')) throw new Error(`route pattern must start with '/': ${pattern}`);
    const segments = split(pattern);
    // '/a/:x' and '/a/:y' match the same requests: compare with parameter names erased.
    const shape = (segs: string[]): string => segs.map((x) => (x.startsWith(':') ? ':' : x)).join('/');
    if (this.routes.some((r) => r.method === method && shape(r.segments) === shape(segments))) {
      throw new Error(`route ${method} ${pattern} registered twice`);
    }
    this.routes.push({ method, pattern, segments, handler });
    return this;
  }

  get(pattern: string, handler: Handler): this {
    return this.add('GET', pattern, handler);
  }

  /** Method + pattern of every route, for discovery (GET /v1). */
  list(): Array<{ method: Method; pattern: string }> {
    return this.routes.map((r) => ({ method: r.method, pattern: r.pattern }));
  }

  /** Dispatches one request; never throws (handler failures become 500 with the message). */
  async handle(raw: RawRequest): Promise<ApiResponse> {
    let url: URL;
    try {
      url = new URL(raw.url, 'http://nrd');
    } catch {
      return json(errorBody('bad_request', `malformed request target: ${raw.url}`), 400);
    }
    const segments = split(url.pathname);
    // HEAD is GET without a body (RFC 9110 §9.3.2); node:http drops the body for HEAD itself.
    const method = raw.method === 'HEAD' ? 'GET' : raw.method;
    const candidates: Array<{ route: Route; params: Record<string, string> }> = [];
    for (const route of this.routes) {
      const params = match(route, segments);
      if (params) candidates.push({ route, params });
    }
    if (candidates.length === 0) {
      return json(errorBody('not_found', `no such endpoint: ${url.pathname}`), 404);
    }
    const hit = candidates.find((c) => c.route.method === method);
    if (!hit) {
      const allow: string[] = [...new Set(candidates.map((c) => c.route.method))];
      if (allow.includes('GET')) allow.push('HEAD');
      return json(
        errorBody('method_not_allowed', `${raw.method} not allowed on ${url.pathname} (allowed: ${allow.join(', ')})`),
        405,
        { allow: allow.join(', ') },
      );
    }
    // Refused before any handler runs: bad input answers 4xx and changes nothing.
    if (Buffer.byteLength(raw.body) > MAX_BODY_BYTES) {
      return json(errorBody('payload_too_large', `request body above ${MAX_BODY_BYTES} bytes`), 413);
    }
    if (nestsDeeperThan(raw.body, MAX_BODY_DEPTH)) {
      return json(errorBody('bad_request', `request body nests arrays/objects deeper than ${MAX_BODY_DEPTH} levels`), 400);
    }
    let body: unknown;
    if (raw.body.trim().length > 0) {
      try {
        body = JSON.parse(raw.body);
      } catch (err) {
        return json(errorBody('bad_request', `request body is not JSON: ${(err as Error).message}`), 400);
      }
    }
    try {
      return await hit.route.handler({ method, path: url.pathname, query: url.searchParams, params: hit.params, body });
    } catch (err) {
      if (err instanceof ApiError) return json(errorBody(err.code, err.message, err.detail), err.status);
      if (err instanceof NrdError) return json(errorBody(err.code, err.message, err.detail), STATUS_OF_KIND[err.kind]);
      return json(errorBody('internal', err instanceof Error ? err.message : String(err)), 500);
    }
  }
}
