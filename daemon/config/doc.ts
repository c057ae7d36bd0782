// Renders docs/config.md, the reference of every site-config key, from the schema objects: the
// text cannot drift from what the loader accepts (a unit test compares the file with this output).
import type { LeafSpec } from './formats.js';
import { CONFIG_SCHEMA, PEER_SCHEMA, SECTION_DOCS, isLeaf, type SchemaTree } from './schema.js';

const cell = (s: string): string => s.replace(/\n/g, ' ').replace(/\|/g, '\\|');

function renderDefault(l: LeafSpec): string {
  if (l.docDefault !== undefined) return cell(l.docDefault);
  const v = l.default;
  if (Array.isArray(v)) return v.length === 0 ? '`[]`' : `\`[${v.join(', ')}]\``;
  if (v === '') return '`""`';
  return `\`${String(v)}\``;
}

function leavesOf(tree: SchemaTree, prefix: string): [string, LeafSpec][] {
  return Object.entries(tree).flatMap(([k, n]) => (isLeaf(n) ? [[`${prefix}${k}`, n] as [string, LeafSpec]] : []));
}

function sectionsOf(tree: SchemaTree, prefix: string): [string, SchemaTree][] {
  return Object.entries(tree).flatMap(([k, n]) => (isLeaf(n) ? [] : [[`${prefix}${k}`, n] as [string, SchemaTree]]));
}

function renderSection(lines: string[], name: string, tree: SchemaTree, depth: number, withEnv: boolean, docKey: string): void {
  lines.push(`${'#'.repeat(depth)} \`${name}\``, '');
  const doc = SECTION_DOCS[docKey];
  if (doc) lines.push(doc, '');
  const leaves = leavesOf(tree, `${name}.`);
  if (leaves.length > 0) {
    lines.push(withEnv ? '| Key | Type | Default | Env | Meaning |' : '| Key | Type | Default | Meaning |');
    lines.push(withEnv ? '|---|---|---|---|---|' : '|---|---|---|---|');
    for (const [key, l] of leaves) {
      const meaning = cell(l.doc) + (l.sensitive ? ' *Secret: redacted in messages and diffs.*' : '');
      const row = [`\`${key}\``, cell(l.type), renderDefault(l), ...(withEnv ? [l.env ? `\`${l.env}\`` : '—'] : []), meaning];
      lines.push(`| ${row.join(' | ')} |`);
    }
    lines.push('');
  }
  for (const [sub, subTree] of sectionsOf(tree, `${name}.`)) {
    const subDocKey = withEnv ? sub : sub.replace(/^bgp\.peers\[\]\./, '');
    renderSection(lines, sub, subTree, Math.min(depth + 1, 4), withEnv, subDocKey);
  }
}

/** The whole markdown reference, ending with a newline. */
export function renderConfigDoc(): string {
  const lines: string[] = [
    '# nrd site configuration',
    '',
    '<!-- Generated from daemon/config/schema.ts by `node dist/daemon/config/gen-doc.js`. Do not edit by hand:',
    '     a unit test fails when this file differs from the schema. -->',
    '',
    'One file per site, YAML or JSON (a `.json` name is read as JSON, anything else as YAML 1.2).',
    'Every key is optional except `node.address`; unknown keys are errors.',
    '',
    'Values are taken, later winning, from:',
    '',
    '1. the site file (`nrd --config FILE`);',
    '2. environment variables (`Env` column), e.g. `NRD_BGP_ASN=65001`, `NRD_LOG_LEVEL=debug`.',
    '   Lists are comma-separated (`NRD_CLUSTER_POD_CIDRS=10.244.0.0/16,fd00:244::/48`) or a YAML flow list;',
    '   booleans accept true/false, yes/no, on/off, 1/0; `NRD_BGP_PEERS` takes a YAML/JSON list of peers;',
    '3. `--set key=value` flags, e.g. `--set bgp.asn=65001`, `--set log.level=debug`,',
    '   `--set \'bgp.peers=[{address: 192.0.2.1, asn: 65000}]\'`. Values are read as YAML scalars;',
    '   text keys take the value literally (quotes, if any, are removed).',
    '',
    '`nrd check-config FILE [--set key=value ...]` validates the result and exits 0, or prints one line',
    'per problem, `<key>: <message> (value: <value>)`, and exits 78 (EX_CONFIG). The daemon refuses a bad',
    'file the same way at start, and keeps its running configuration when a file is bad on SIGHUP.',
    '',
    'A commented example of a real site: [`config/site.example.yaml`](../config/site.example.yaml).',
    '',
  ];
  for (const [name, tree] of sectionsOf(CONFIG_SCHEMA, '')) renderSection(lines, name, tree, 2, true, name);
  lines.push(
    '## `bgp.peers[]` fields',
    '',
    'One mapping per static peer in `bgp.peers`. `address` and `asn` are required; two peers may not share',
    'an address. Peer fields have no env var of their own: set the whole list with `NRD_BGP_PEERS` or',
    '`--set bgp.peers=...`.',
    '',
  );
  const tmp: string[] = [];
  renderSection(tmp, 'bgp.peers[]', PEER_SCHEMA, 2, false, 'bgp.peers[]');
  lines.push(...tmp.slice(2)); // the heading above replaces the generic one
  while (lines[lines.length - 1] === '') lines.pop();
  return `${lines.join('\n')}\n`;
}
