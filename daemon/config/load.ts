// Loading the site file: YAML/JSON parse, convict merge of file < NRD_* env < --set, convict's
// error text translated into ConfigIssue, per-peer and cross-key checks, derived defaults, freeze.
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import convict from 'convict';
import { parseDocument } from 'yaml';
import { STRING_FORMATS, registerFormats, withElementSink, type ElementIssue, type LeafSpec } from './formats.js';
import { CONFIG_LEAVES, CONFIG_SCHEMA, PEER_LEAVES, PEER_SCHEMA, isLeaf, schemaNodeAt, type SchemaTree } from './schema.js';
import { checkSemantics, type RawConfig, type RawPeer } from './semantics.js';
import { resolveConfig } from './resolve.js';
import { redactIssue } from './redact.js';
import type { ConfigIssue, LoadResult } from './types.js';

export interface LoadOptions {
  /** Environment read for NRD_* overrides; process.env when absent. */
  env?: Record<string, string | undefined>;
  /** "key=value" overrides applied last; values are read as YAML scalars (lists as YAML flow). */
  sets?: string[];
  /** Default of node.name; os.hostname() when absent. */
  hostname?: string;
}

export { REDACTED } from './redact.js';
const MAX_DEPTH = 32;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** Synchronous. Reads YAML or JSON (by extension: .json is JSON, anything else YAML). */
export function loadConfigFile(path: string, opts: LoadOptions = {}): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return { ok: false, issues: [{ key: '(file)', value: path, message: `cannot read the file (${code})` }] };
  }
  return loadConfigText(text, { ...opts, json: path.toLowerCase().endsWith('.json') });
}

/** Parses YAML (or JSON when `json`) text and loads it. Never throws on any input. */
export function loadConfigText(text: string, opts: LoadOptions & { json?: boolean } = {}): LoadResult {
  let raw: unknown;
  if (opts.json) {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      return { ok: false, issues: [{ key: '(file)', value: null, message: `invalid JSON: ${jsonErrorWithoutSource(e)}` }] };
    }
  } else {
    const parsed = parseYaml(text);
    if (!parsed.ok) return { ok: false, issues: parsed.issues };
    raw = parsed.value;
  }
  return loadConfigObject(raw, opts);
}

// V8 quotes the text around a JSON syntax error ('Unexpected token 'h', ..."sword": hunter2}" is
// not valid JSON'): that text may be a secret, so only the position is kept.
function jsonErrorWithoutSource(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const at = /at position \d+(?: \(line \d+ column \d+\))?/.exec(msg);
  const what = /^(Unexpected end of JSON input|Unexpected token|Unterminated string|Bad control character|Bad escaped character|Expected [^"]*?(?= in JSON| after|$))/.exec(msg);
  return [what?.[1] ?? 'syntax error', at?.[0]].filter((x) => x !== undefined).join(' ');
}

function parseYaml(text: string): { ok: true; value: unknown } | { ok: false; issues: ConfigIssue[] } {
  try {
    // YAML 1.2 core schema: "yes"/"no" stay strings, no sexagesimal numbers, JSON is accepted as is.
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, merge: false });
    if (doc.errors.length > 0) {
      return {
        ok: false,
        issues: doc.errors.map((e) => ({
          key: '(file)',
          value: null,
          message: `invalid YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}`,
        })),
      };
    }
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (e) {
    // toJS() names an unresolved alias after its colon ("...: hunter2"): an unquoted password that
    // starts with "*" is read as one, so the name is left out.
    const first = (e as Error).message.split('\n')[0]!.replace(/^(Unresolved alias \(.*?\)):.*$/, '$1');
    return { ok: false, issues: [{ key: '(file)', value: null, message: `invalid YAML: ${first}` }] };
  }
}

/** Loads an already parsed document (tests, generated lab sites). Never throws on any input. */
export function loadConfigObject(raw: unknown, opts: LoadOptions = {}): LoadResult {
  try {
    const r = loadUnguarded(raw, opts);
    // Every issue passes here on its way out: secrets are redacted in one place (redact.ts).
    return r.ok ? r : { ok: false, issues: r.issues.map(redactIssue) };
  } catch (e) {
    // A bug here must refuse the file with exit 78, not crash the daemon on SIGHUP. The property
    // tests fail on this message, so it cannot hide.
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { ok: false, issues: [{ key: '(config)', value: null, message: `${INTERNAL_ERROR}: ${msg}` }] };
  }
}

export const INTERNAL_ERROR = 'internal error of the config loader';

function loadUnguarded(raw: unknown, opts: LoadOptions): LoadResult {
  registerFormats();
  const issues: ConfigIssue[] = [];
  const env = opts.env ?? process.env;
  let doc: Record<string, unknown> = {};
  if (isPlainObject(raw)) doc = raw;
  else if (raw !== null && raw !== undefined) {
    issues.push({ key: '(file)', value: raw, message: `must be a mapping of sections (${Object.keys(CONFIG_SCHEMA).join(', ')})` });
  }

  const input = sanitize(doc, CONFIG_SCHEMA, '', issues, 0);
  // args: [] because convict would otherwise parse process.argv; nrd declares no convict args.
  const conv = convict(CONFIG_SCHEMA as convict.Schema<Record<string, unknown>>, {
    env: env as NodeJS.ProcessEnv,
    args: [],
  });
  conv.load(input); // overlays the file, then re-applies the env (env beats file)

  const sources = new Map<string, string>();
  for (const [p, leaf] of CONFIG_LEAVES) {
    if (leaf.env && env[leaf.env] !== undefined) sources.set(p, leaf.env);
  }
  applySets(conv, opts.sets ?? [], sources, issues);

  issues.push(...validateWithConvict(conv, '', CONFIG_SCHEMA, CONFIG_LEAVES));
  const props = conv.getProperties();

  const peers: RawPeer[] = [];
  const bgp = props.bgp as Record<string, unknown>;
  if (Array.isArray(bgp.peers)) {
    // Entries that are not mappings already have their issue (nrd-peer-list); check the others.
    (bgp.peers as unknown[]).forEach((p, i) => {
      if (isPlainObject(p)) peers.push(loadPeer(p, `bgp.peers[${i}]`, issues));
    });
  }
  const rawConfig = { ...(props as unknown as RawConfig), bgp: { ...(bgp as unknown as RawConfig['bgp']), peers } };
  const host = opts.hostname ?? osHostname();
  checkSemantics(rawConfig, host, issues);

  if (issues.length > 0) return { ok: false, issues: annotate(dedupe(issues), sources) };
  return { ok: true, config: deepFreeze(resolveConfig(rawConfig, host)) };
}

/** Applies --set overrides; only declared leaves may be set (convict would build paths through scalars and throw). */
function applySets(conv: convict.Config<Record<string, unknown>>, sets: string[], sources: Map<string, string>, issues: ConfigIssue[]): void {
  for (const s of sets) {
    const eq = typeof s === 'string' ? s.indexOf('=') : -1;
    if (eq <= 0) {
      issues.push({ key: '--set', value: s, message: 'must be key=value, e.g. --set bgp.asn=65001' });
      continue;
    }
    const key = s.slice(0, eq).trim();
    const text = s.slice(eq + 1);
    const node = schemaNodeAt(CONFIG_SCHEMA, key);
    if (!node || !isLeaf(node)) {
      const why = node ? `is a section: set one of its keys (${Object.keys(node).join(', ')})` : unknownKeyMessage(CONFIG_SCHEMA, key);
      issues.push({ key, value: text, message: `${why} (from --set)` });
      continue;
    }
    conv.set(key, STRING_FORMATS.has(node.format) ? unquote(text) : text);
    sources.set(key, '--set');
  }
}

/** A quoted YAML scalar loses its quotes; anything else is taken literally. */
function unquote(text: string): string {
  const t = text.trim();
  if (/^(".*"|'.*')$/s.test(t)) {
    const doc = parseDocument(t);
    const v: unknown = doc.errors.length === 0 ? doc.toJS() : undefined;
    if (typeof v === 'string') return v;
  }
  return text;
}

/**
 * Drops what convict cannot digest and reports it: sections that are not mappings (convict would
 * report every key below them as "missing"), mappings where a scalar is expected (convict recurses
 * into them and can throw), and unknown keys whose names would break convict's dotted paths. Other
 * unknown keys stay, so that convict's strict mode reports them.
 */
function sanitize(raw: Record<string, unknown>, tree: SchemaTree, prefix: string, issues: ConfigIssue[], depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const p = joinKey(prefix, k);
    const node = Object.prototype.hasOwnProperty.call(tree, k) ? tree[k] : undefined;
    if (node === undefined) {
      if (convictCanCarry(k, v, depth)) out[k] = v;
      else issues.push({ key: p, value: v, message: unknownKeyMessage(tree, k) });
    } else if (isLeaf(node)) {
      if (isPlainObject(v)) issues.push({ key: p, value: v, message: `expects ${node.type}, got a mapping` });
      else out[k] = v;
    } else if (v === null || v === undefined) {
      // "etcd:" with every key commented out: the section keeps its defaults.
    } else if (!isPlainObject(v)) {
      issues.push({ key: p, value: v, message: `must be a mapping (keys: ${Object.keys(node).join(', ')})` });
    } else if (depth >= MAX_DEPTH) {
      issues.push({ key: p, value: v, message: 'is nested too deeply' });
    } else {
      out[k] = sanitize(v, node, p, issues, depth + 1);
    }
  }
  return out;
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** "a.b" for plain names; a name with dots or blanks is quoted so the path stays unambiguous. */
function joinKey(prefix: string, k: string): string {
  if (!PLAIN_KEY.test(k)) return `${prefix}[${JSON.stringify(k)}]`;
  return prefix ? `${prefix}.${k}` : k;
}

function convictCanCarry(k: string, v: unknown, depth: number): boolean {
  if (!PLAIN_KEY.test(k) || k in Object.prototype || depth >= MAX_DEPTH) return false;
  if (!isPlainObject(v)) return true;
  return Object.entries(v).every(([kk, vv]) => convictCanCarry(kk, vv, depth + 1));
}

function unknownKeyMessage(tree: SchemaTree, dotted: string): string {
  const segs = dotted.split('.');
  const parent = segs.length > 1 ? schemaNodeAt(tree, segs.slice(0, -1).join('.')) : tree;
  const last = segs[segs.length - 1]!;
  const siblings = parent && !isLeaf(parent) ? Object.keys(parent) : [];
  const hint = closest(last, siblings);
  return hint ? `unknown key: did you mean ${hint}?` : 'unknown key';
}

function closest(word: string, candidates: string[]): string | null {
  const lower = word.toLowerCase();
  const exact = candidates.find((c) => c.toLowerCase() === lower);
  if (exact) return exact;
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(lower, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(best.length / 4)) ? best : null;
}

function levenshtein(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Runs convict's strict validation and turns its text into issues, with `keyPrefix` before every key. */
function validateWithConvict(
  conv: convict.Config<Record<string, unknown>>,
  keyPrefix: string,
  tree: SchemaTree,
  leaves: ReadonlyMap<string, LeafSpec>,
): ConfigIssue[] {
  const { result: text, elements } = withElementSink(() => {
    try {
      conv.validate({ allowed: 'strict', output: () => {} });
      return null;
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  });
  if (text === null) return [];
  return translateConvictErrors(text, keyPrefix, tree, leaves, conv.getProperties(), elements);
}

const UNDECLARED = /^configuration param '(.*)' not declared in the schema$/;
const MISSING = /^configuration param '(.*)' missing from config, did you override its parent\?$/;
// convict writes `<fullName>: <message>` and appends `: value was <json>` when the value is truthy.
const INVALID = /^([A-Za-z0-9_.-]+): (.*?)(?:: value was .*)?$/;

/**
 * convict reports problems as one text, a line per problem. nrd's formats write single-line
 * messages and leave per-element details in `elements`, so the text maps back to structured issues.
 */
export function translateConvictErrors(
  text: string,
  keyPrefix: string,
  tree: SchemaTree,
  leaves: ReadonlyMap<string, LeafSpec>,
  props: Record<string, unknown>,
  elements: Map<string, ElementIssue[]>,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let m = UNDECLARED.exec(line);
    if (m) {
      // convict names the leaves under an unknown key; report the unknown key itself once.
      const segs = m[1]!.split('.');
      let n = 1;
      while (n < segs.length && schemaNodeAt(tree, segs.slice(0, n).join('.')) !== undefined) n++;
      const unknown = segs.slice(0, n).join('.');
      if (seen.has(unknown)) continue;
      seen.add(unknown);
      out.push({ key: keyPrefix + unknown, value: getPath(props, unknown), message: unknownKeyMessage(tree, unknown) });
      continue;
    }
    m = MISSING.exec(line);
    if (m) {
      out.push({ key: keyPrefix + m[1]!, value: undefined, message: 'is missing (its section was replaced by a non-mapping)' });
      continue;
    }
    m = INVALID.exec(line);
    if (m && leaves.has(m[1]!)) {
      const name = m[1]!;
      const detail = elements.get(name);
      if (detail) {
        for (const d of detail) out.push({ key: keyPrefix + name + d.suffix, value: d.value, message: d.message });
      } else {
        out.push({ key: keyPrefix + name, value: getPath(props, name), message: m[2]! });
      }
      continue;
    }
    out.push({ key: keyPrefix ? keyPrefix.replace(/\.$/, '') : '(config)', value: null, message: line });
  }
  return out;
}

function getPath(obj: unknown, dotted: string): unknown {
  let cur: unknown = obj;
  for (const seg of dotted.split('.')) {
    if (!isPlainObject(cur) || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

const REQUIRED_PEER_KEYS: Record<string, string> = {
  address: 'is required: every peer needs its address',
  asn: 'is required: every peer needs its asn',
};

/** Validates one bgp.peers entry with a convict instance of the peer schema (unknown keys included). */
function loadPeer(raw: Record<string, unknown>, prefix: string, issues: ConfigIssue[]): RawPeer {
  const found: ConfigIssue[] = [];
  const input = sanitize(raw, PEER_SCHEMA, prefix, found, 0);
  const pc = convict(PEER_SCHEMA as convict.Schema<Record<string, unknown>>, { env: {}, args: [] });
  pc.load(input);
  found.push(...validateWithConvict(pc, `${prefix}.`, PEER_SCHEMA, PEER_LEAVES));
  for (const [k, message] of Object.entries(REQUIRED_PEER_KEYS)) {
    if (raw[k] !== undefined) continue;
    const key = `${prefix}.${k}`;
    const at = found.findIndex((i) => i.key === key);
    const addr = typeof raw.address === 'string' ? ` (peer ${raw.address})` : '';
    const issue = { key, value: undefined, message: message + (k === 'asn' ? addr : '') };
    if (at >= 0) found[at] = issue;
    else found.push(issue);
  }
  issues.push(...found);
  return pc.getProperties() as unknown as RawPeer;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const id = `${i.key}\0${i.message}\0${typeof i.value === 'object' ? '' : String(i.value)}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Says which env var or --set a bad value came from: the operator will not find it in the file. */
function annotate(issues: ConfigIssue[], sources: Map<string, string>): ConfigIssue[] {
  return issues.map((i) => {
    const leafPath = i.key.startsWith('bgp.peers[') ? 'bgp.peers' : i.key.replace(/\[.*$/, '');
    const src = sources.get(leafPath);
    if (!src || i.message.endsWith('(from --set)')) return i;
    return { ...i, message: `${i.message} (from ${src})` };
  });
}

export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
