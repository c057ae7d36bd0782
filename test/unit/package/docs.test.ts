// Man pages from --help text, nrdctl's bash completion from its command table, and the
// ownership selection of `nrd cleanup`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parseHelp, renderBashCompletion, renderManPage, roffEscape } from '../../../daemon/packaging/docs.js';
import { commands } from '../../../daemon/cli/commands.js';
import { usage } from '../../../daemon/cli/run.js';
import { DEFAULT_TARGET, marksFor, ownedFilters, ownedLinks } from '../../../daemon/cleanup.js';
import { NRD_TC_PREF } from '../../../daemon/datapath/attach.js';

test('roff escaping: backslashes, option hyphens, a leading dot', () => {
  assert.equal(roffEscape('--set a\\b'), '\\-\\-set a\\eb');
  assert.equal(roffEscape('.hidden'), '\\&.hidden');
});

test("nrdctl's man page has every command of its --help, with its summary", () => {
  const sections = parseHelp(usage(commands));
  const cmds = sections.find((s) => s.heading === 'COMMANDS')!;
  assert.equal(cmds.items.length, commands.length);
  assert.equal(cmds.items[0]!.term, 'status');
  assert.equal(cmds.items[0]!.text, commands[0]!.summary);
  const page = renderManPage({ name: 'nrdctl', section: 8, summary: 's', help: usage(commands), version: '1.0' });
  assert.match(page, /^\.TH NRDCTL 8 /m);
  assert.match(page, /^\.SH OPTIONS$/m);
});

test('a continuation row joins the text of the item above', () => {
  const s = parseHelp('Usage:\n  a --x    first\n           second\n  b        other\n');
  assert.deepEqual(s[0]!.items, [{ term: 'a --x', text: 'first second' }, { term: 'b', text: 'other' }]);
});

test('bash completion: command words, subcommands, options and -o values', () => {
  const script = renderBashCompletion(commands);
  const complete = (...words: string[]): string =>
    execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _nrdctl; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim();
  assert.equal(complete('nrdctl', 'bg'), 'bgp');
  assert.equal(complete('nrdctl', '-o', 'json', 'bgp', ''), 'routes');
  assert.equal(complete('nrdctl', 'bgp', 'routes', '--pe'), '--peer');
  assert.equal(complete('nrdctl', '-o', 'j'), 'json');
  assert.deepEqual(complete('nrdctl', 'node').split(' ').sort(), ['node', 'nodes']);
});

test('cleanup selects links by prefix AND kind, filters by nrd prefs of kind bpf', () => {
  const links = [
    { name: 'nrd.vxlan', kind: 'vxlan' }, { name: 'nrdv0a1b2c3d4e5', kind: 'veth' },
    { name: 'nrdx', kind: 'veth' }, { name: 'nrdvx', kind: 'vxlan' }, { name: 'vx0', kind: 'vxlan' }, { name: 'eth0', kind: undefined },
  ];
  assert.deepEqual(ownedLinks(links, marksFor(DEFAULT_TARGET)).map((l) => l.name), ['nrd.vxlan', 'nrdv0a1b2c3d4e5']);
  const f = (pref: number, kind = 'bpf') => ({ ifname: 'eth0', dir: 'ingress' as const, pref, kind });
  assert.deepEqual(ownedFilters([f(NRD_TC_PREF), f(NRD_TC_PREF - 2), f(NRD_TC_PREF - 3), f(NRD_TC_PREF + 1), f(NRD_TC_PREF, 'u32')]).map((x) => x.pref), [NRD_TC_PREF, NRD_TC_PREF - 2]);
  assert.deepEqual(marksFor({ ...DEFAULT_TARGET, routeProtocol: 230 }).map((m) => m.protocol), [230, 221]);
});
