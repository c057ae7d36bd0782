// convict formats for the site config: strict validators with messages an operator can act on,
// and type-directed coercion of text (env vars, --set) so that "65001abc" is refused rather than
// read as 65001 (convict's own parseInt) and "no" is false rather than true (convict's boolean).
import convict from 'convict';
import { parse as parseYaml } from 'yaml';
import { familyBits, parseCidr, parseCommunity, parseIp, parseLargeCommunity, type Family } from './net.js';

export type FormatName =
  | 'nrd-int'
  | 'nrd-hold-time'
  | 'nrd-bool'
  | 'nrd-enum'
  | 'nrd-string'
  | 'nrd-ip'
  | 'nrd-cidr-list'
  | 'nrd-url-list'
  | 'nrd-hostport'
  | 'nrd-abspath'
  | 'nrd-ifname'
  | 'nrd-nodename'
  | 'nrd-etcd-prefix'
  | 'nrd-community-list'
  | 'nrd-large-community-list'
  | 'nrd-family-list'
  | 'nrd-peer-list';

/** Schema leaf as nrd writes it: convict's fields plus the knobs our formats read and the doc renderer shows. */
export interface LeafSpec {
  doc: string;
  default: unknown;
  format: FormatName;
  /** Human type for docs and messages, e.g. "integer 1..4294967295". */
  type: string;
  /** Filled from the path when absent (NRD_<SECTION>_<KEY>); null: no env var (peer fields). */
  env?: string | null;
  /** What the docs show as default when the stored default is a placeholder ("" → hostname). */
  docDefault?: string;
  sensitive?: boolean;
  nullable?: boolean;
  min?: number;
  max?: number;
  values?: readonly string[];
  allowEmpty?: boolean;
  /** nrd-ip / nrd-cidr-list: restrict to one address family. */
  family?: Family;
  /** nrd-ip: 0.0.0.0 / :: refused. */
  nonzero?: boolean;
  /** nrd-ifname: required name prefix (ownership of links is marked by name). */
  namePrefix?: string;
  maxBytes?: number;
  minItems?: number;
  /** Dotted path inside its convict instance; set by the schema builder. */
  path?: string;
}

/** A problem inside a list value, reported under `<key>[i]` instead of the whole key. */
export interface ElementIssue {
  suffix: string;
  value: unknown;
  message: string;
}

// convict only passes text out of validate(); list formats leave their per-element findings here,
// keyed by the leaf's path, while one validate() call runs (synchronously).
let elementSink: Map<string, ElementIssue[]> | null = null;

export function withElementSink<T>(fn: () => T): { result: T; elements: Map<string, ElementIssue[]> } {
  const sink = new Map<string, ElementIssue[]>();
  const prev = elementSink;
  elementSink = sink;
  try {
    return { result: fn(), elements: sink };
  } finally {
    elementSink = prev;
  }
}

const describe = (x: unknown): string =>
  x === null ? 'null' : Array.isArray(x) ? 'a list' : typeof x === 'object' ? 'a mapping' : typeof x;

function fail(message: string): never {
  throw new Error(message);
}

/** Validates each element of a list; collects all bad elements, then fails once for the key. */
function eachElement(x: unknown, item: LeafSpec, what: string, check: (el: unknown, i: number) => string | null): void {
  if (!Array.isArray(x)) fail(`must be a list of ${what}, got ${describe(x)}`);
  if (item.minItems && x.length < item.minItems) fail(`must hold at least ${item.minItems} ${what}`);
  const bad: ElementIssue[] = [];
  x.forEach((el, i) => {
    const msg = check(el, i);
    if (msg) bad.push({ suffix: `[${i}]`, value: el, message: msg });
  });
  if (bad.length === 0) return;
  if (elementSink && item.path) elementSink.set(item.path, bad);
  fail(bad.length === 1 ? `[${bad[0]!.suffix.slice(1, -1)}] ${bad[0]!.message}` : `${bad.length} entries are invalid`);
}

function checkInt(x: unknown, item: LeafSpec): void {
  const min = item.min ?? 0;
  const max = item.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
    fail(`must be an integer in ${min}..${max}${item.nullable ? ' or null' : ''}`);
  }
}

export function ipProblem(x: unknown, item: Pick<LeafSpec, 'family' | 'nonzero'>): string | null {
  if (typeof x !== 'string') return `must be an IP address, got ${describe(x)}`;
  const ip = parseIp(x);
  const fam = item.family ? `IPv${item.family} ` : 'IP ';
  if (!ip) return `is not a valid ${fam}address`;
  if (item.family && ip.family !== item.family) return `must be an IPv${item.family} address`;
  if (item.nonzero && ip.value === 0n) return 'must not be the unspecified address';
  return null;
}

export function cidrProblem(x: unknown, family?: Family): string | null {
  if (typeof x !== 'string') return `must be a CIDR prefix such as 10.244.0.0/16, got ${describe(x)}`;
  const c = parseCidr(x);
  if (!c) {
    if (!x.includes('/') && parseIp(x)) return `is not a CIDR prefix: add the length (${x}/${parseIp(x)!.family === 4 ? 32 : 128})`;
    const slash = x.indexOf('/');
    if (slash > 0 && parseIp(x.slice(0, slash))) return `has an invalid prefix length (0..${familyBits(parseIp(x.slice(0, slash))!.family)})`;
    return 'is not a valid CIDR prefix (address/length)';
  }
  if (family && c.family !== family) return `must be an IPv${family} prefix`;
  if (c.hostBitsSet) return `has host bits set: did you mean ${c.network}?`;
  return null;
}

function checkUrl(x: unknown): string | null {
  if (typeof x !== 'string') return `must be a URL such as http://127.0.0.1:2379, got ${describe(x)}`;
  let u: URL;
  try {
    u = new URL(x);
  } catch {
    return 'is not a valid URL (http://host:port or https://host:port)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must use http or https, not ${u.protocol.replace(':', '')}`;
  if (!u.hostname) return 'has no host';
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password) {
    return 'must be scheme://host:port only (credentials go in etcd.username/etcd.password)';
  }
  return null;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function nodeNameProblem(x: string): string | null {
  return HOSTNAME.test(x) ? null : 'must be a host name: letters, digits, "-" and "." (at most 253 characters)';
}

function checkHostPort(x: unknown, item: LeafSpec): void {
  if (typeof x !== 'string') fail(`must be "host:port", got ${describe(x)}`);
  if (x === '' && item.allowEmpty) return;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(x);
  if (!m) fail('must be "host:port" (IPv6 as "[::1]:9469")' + (item.allowEmpty ? ', or "" to disable' : ''));
  const port = Number(m[3]);
  if (port < 1 || port > 65535) fail('has a port outside 1..65535');
  if (m[1] !== undefined) {
    const ip = parseIp(m[1]);
    if (!ip || ip.family !== 6) fail('has an invalid IPv6 address in brackets');
  } else if (!parseIp(m[2]!) && !HOSTNAME.test(m[2]!)) {
    fail('has an invalid host');
  }
}

function checkString(x: unknown, item: LeafSpec): void {
  if (typeof x !== 'string') fail(`must be a string, got ${describe(x)}`);
  if (!item.allowEmpty && x === '') fail('is required');
  if (item.maxBytes !== undefined && Buffer.byteLength(x) > item.maxBytes) fail(`is longer than ${item.maxBytes} bytes`);
}

const VALIDATORS: Record<FormatName, (x: unknown, item: LeafSpec) => void> = {
  'nrd-int': checkInt,
  'nrd-hold-time': (x, item) => {
    // RFC 4271 §4.2: the hold time is zero or at least three seconds.
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 65535 || x === 1 || x === 2) {
      fail(`must be 0 (no keepalives) or an integer in 3..65535 seconds${item.nullable ? ', or null' : ''}`);
    }
  },
  'nrd-bool': (x) => {
    if (typeof x !== 'boolean') fail(`must be true or false, got ${describe(x)}`);
  },
  'nrd-enum': (x, item) => {
    const values = item.values ?? [];
    if (typeof x !== 'string' || !values.includes(x)) fail(`must be one of: ${values.join(', ')}`);
  },
  'nrd-string': checkString,
  'nrd-ip': (x, item) => {
    if (x === '' && item.allowEmpty) return;
    if (x === '') fail('is required');
    const p = ipProblem(x, item);
    if (p) fail(p);
  },
  'nrd-cidr-list': (x, item) => eachElement(x, item, 'CIDR prefixes', (el) => cidrProblem(el, item.family)),
  'nrd-url-list': (x, item) => eachElement(x, item, 'URLs', checkUrl),
  'nrd-hostport': checkHostPort,
  'nrd-abspath': (x, item) => {
    checkString(x, item);
    if (x === '') return;
    if (!(x as string).startsWith('/')) fail('must be an absolute path');
    if ((x as string).includes('\0')) fail('must not contain NUL');
  },
  'nrd-ifname': (x, item) => {
    checkString(x, item);
    if (x === '') return;
    const s = x as string;
    // Linux IFNAMSIZ is 16 with the terminating NUL; "/" and blanks are refused by dev_valid_name().
    if (Buffer.byteLength(s) > 15 || /[\s/:]/.test(s) || s === '.' || s === '..') {
      fail('must be a Linux interface name (1..15 characters, no "/", ":" or blanks)');
    }
    if (item.namePrefix && !s.startsWith(item.namePrefix)) {
      fail(`must start with "${item.namePrefix}": nrd only touches links whose name marks them as its own`);
    }
  },
  'nrd-nodename': (x, item) => {
    checkString(x, item);
    if (x === '') return;
    const p = nodeNameProblem(x as string);
    if (p) fail(p);
  },
  'nrd-etcd-prefix': (x, item) => {
    checkString(x, item);
    if (!/^(\/[A-Za-z0-9._-]+)+$/.test(x as string)) {
      fail('must be an absolute key prefix such as /nrd (segments of letters, digits, ".", "_", "-"; no trailing "/")');
    }
  },
  'nrd-community-list': (x, item) =>
    eachElement(x, item, 'communities', (el) =>
      parseCommunity(el as string) === null
        ? 'must be "asn:value" (each 0..65535) or a well-known name such as no-export'
        : null,
    ),
  'nrd-large-community-list': (x, item) =>
    eachElement(x, item, 'large communities', (el) =>
      parseLargeCommunity(el as string) === null ? 'must be "global:local1:local2" (each 0..4294967295)' : null,
    ),
  'nrd-family-list': (x, item) => {
    eachElement(x, item, 'address families', (el) => (el === 'ipv4' || el === 'ipv6' ? null : 'must be ipv4 or ipv6'));
    if (new Set(x as unknown[]).size !== (x as unknown[]).length) fail('lists a family twice');
  },
  'nrd-peer-list': (x, item) => {
    if (!Array.isArray(x)) fail(`must be a list of peers, got ${describe(x)}`);
    const bad: ElementIssue[] = [];
    x.forEach((el, i) => {
      if (el === null || typeof el !== 'object' || Array.isArray(el)) {
        bad.push({ suffix: `[${i}]`, value: el, message: 'must be a mapping with at least address and asn' });
      }
    });
    // Peer fields are checked one by one after convict (its Array format does not look inside).
    if (bad.length === 0) return;
    if (elementSink && item.path) elementSink.set(item.path, bad);
    fail('has entries that are not mappings');
  },
};

// --- coercion of text (env vars, --set, quoted scalars in the file) ---

/** The YAML value of `text`, or `original` (what the operator wrote) when it does not parse. */
function yamlScalar(text: string, original: string): unknown {
  try {
    return parseYaml(text, { logLevel: 'error' });
  } catch {
    return original;
  }
}

function coerceNumber(v: string): unknown {
  const t = v.trim();
  if (t === '') return v;
  const parsed = yamlScalar(t, v);
  return typeof parsed === 'number' || parsed === null ? parsed : v;
}

function coerceBool(v: string): unknown {
  const t = v.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(t)) return true;
  if (['false', 'no', 'off', '0'].includes(t)) return false;
  return v;
}

function coerceList(v: string): unknown {
  const t = v.trim();
  if (t === '') return [];
  if (t.startsWith('[')) return yamlScalar(t, v);
  return t.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

const COERCERS: Partial<Record<FormatName, (v: string) => unknown>> = {
  'nrd-int': coerceNumber,
  'nrd-hold-time': coerceNumber,
  'nrd-bool': coerceBool,
  'nrd-cidr-list': coerceList,
  'nrd-url-list': coerceList,
  'nrd-community-list': coerceList,
  'nrd-large-community-list': coerceList,
  'nrd-family-list': coerceList,
  'nrd-peer-list': (v) => {
    const t = v.trim();
    return t === '' ? [] : yamlScalar(t, v);
  },
};

/** Formats whose text is taken literally (a password "123456" stays a string). */
export const STRING_FORMATS: ReadonlySet<FormatName> = new Set<FormatName>([
  'nrd-enum',
  'nrd-string',
  'nrd-ip',
  'nrd-hostport',
  'nrd-abspath',
  'nrd-ifname',
  'nrd-nodename',
  'nrd-etcd-prefix',
]);

let registered = false;

/** Registers the nrd-* formats with convict (its registry is process-wide); idempotent. */
export function registerFormats(): void {
  if (registered) return;
  registered = true;
  for (const name of Object.keys(VALIDATORS) as FormatName[]) {
    const validate = VALIDATORS[name];
    const coerce = COERCERS[name];
    convict.addFormat({
      name,
      validate: (x: unknown, schema: convict.SchemaObj) => validate(x, schema as unknown as LeafSpec),
      ...(coerce ? { coerce: (v: unknown) => (typeof v === 'string' ? coerce(v) : v) } : {}),
    });
  }
}
