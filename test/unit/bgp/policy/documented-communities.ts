// The well-known community names the docs promise, read from the schema's doc text of
// bgp.export.communities (docs/config.md is generated from it): shared by the unit test and the
// BIRD interop test, so a name added to the docs is tested without editing either.
import assert from 'node:assert/strict';
import { CONFIG_SCHEMA } from '../../../../daemon/config/index.js';
import type { LeafSpec } from '../../../../daemon/config/formats.js';

export function documentedWellKnownCommunities(): string[] {
  const bgp = CONFIG_SCHEMA.bgp as Record<string, Record<string, LeafSpec>>;
  const doc = bgp.export!.communities!.doc;
  // "...: "asn:value" or no-export, no-advertise, ..., graceful-shutdown."
  const m = /"asn:value" or (.+)\.$/.exec(doc);
  assert.ok(m, `the doc of bgp.export.communities no longer lists the names after "asn:value" or: ${doc}`);
  const names = m[1]!.split(',').map((s) => s.trim());
  assert.ok(names.length >= 6 && names.every((n) => /^[a-z][a-z-]+$/.test(n)), `unexpected names: ${names.join('|')}`);
  return names;
}
