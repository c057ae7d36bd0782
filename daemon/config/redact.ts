// Secrets never leave the config loader: the one place where a ConfigIssue's value is redacted
// before check-config prints it or the daemon logs it. A value is hidden when its key is a
// sensitive leaf of the schema (or lies below one), whatever its type: a password written as a
// mapping or a list is still a password. A mapping or list shown as the value of some other key
// (a section given as a list, a peer that is not a mapping) has its secret-looking fields hidden.
import { CONFIG_LEAVES, PEER_LEAVES } from './schema.js';
import type { LeafSpec } from './formats.js';
import type { ConfigIssue } from './types.js';

export const REDACTED = '(redacted)';

// Names of the schema's sensitive leaves (etcd.password, bgp.peers[].password).
const SENSITIVE_NAMES: ReadonlySet<string> = new Set(
  [...CONFIG_LEAVES.values(), ...PEER_LEAVES.values()].filter((l) => l.sensitive).map((l) => l.path!.split('.').pop()!),
);

// A key the schema does not declare is judged by its name: a mistyped "pasword" or an "apiKey" at
// the wrong place holds a secret as surely as the right key would.
const SECRET_NAME = /pa?s+w|pwd|secret|token|credential|private|key$/i;

// Key material pasted where a path was expected is hidden wherever it appears.
const KEY_MATERIAL = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

// Deeper values are not shown at all: a secret cannot hide below what is printed.
const MAX_SHOWN_DEPTH = 32;

const PEER_KEY = /^bgp\.peers\[\d+\]\.?/;

/** The issue with its value redacted where it may hold a secret; other issues are returned as is. */
export function redactIssue(issue: ConfigIssue): ConfigIssue {
  const { value } = issue;
  if (value === undefined || value === null || value === '') return issue;
  if (keyIsSecret(issue.key)) return { ...issue, value: REDACTED };
  const shown = redactValue(value, 0, new WeakMap());
  return shown === value ? issue : { ...issue, value: shown };
}

/** Whether a value at this dotted key ("etcd.password", "bgp.peers[0].password[1]") is secret. */
export function keyIsSecret(key: string): boolean {
  const peer = PEER_KEY.exec(key);
  const [leaves, rest] = peer ? [PEER_LEAVES, key.slice(peer[0].length)] : [CONFIG_LEAVES, key];
  // "a.b[2]" → ["a", "b"]; a quoted odd name ("a[\"x.y\"]") stays one segment.
  const segs = rest
    .replace(/\[\d+\]/g, '')
    .split(/\.|(?=\[")/)
    .filter((s) => s !== '');
  for (let n = 1; n <= segs.length; n++) {
    const leaf: LeafSpec | undefined = leaves.get(segs.slice(0, n).join('.'));
    // At or below a declared leaf the schema decides; below it, the leaf's own setting holds.
    if (leaf) return leaf.sensitive === true;
  }
  return segs.some((s) => SENSITIVE_NAMES.has(s) || SECRET_NAME.test(s));
}

function redactValue(v: unknown, depth: number, seen: WeakMap<object, unknown>): unknown {
  if (typeof v === 'string') return KEY_MATERIAL.test(v) ? REDACTED : v;
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_SHOWN_DEPTH) return '(nested too deeply)';
  // YAML aliases can share and cycle: one copy per original keeps the shape (and the cycle).
  const done = seen.get(v);
  if (done !== undefined) return done;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    seen.set(v, out);
    let changed = false;
    for (const x of v) {
      const y = redactValue(x, depth + 1, seen);
      changed ||= y !== x;
      out.push(y);
    }
    return changed ? out : v;
  }
  const out: Record<string, unknown> = {};
  seen.set(v, out);
  let changed = false;
  for (const [k, x] of Object.entries(v)) {
    const secret = (SENSITIVE_NAMES.has(k) || SECRET_NAME.test(k)) && x !== '' && x !== null;
    const y = secret ? REDACTED : redactValue(x, depth + 1, seen);
    changed ||= y !== x;
    out[k] = y;
  }
  return changed ? out : v;
}
