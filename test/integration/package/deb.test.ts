// The Debian package end to end: built once per file (two versions, for the upgrade), lintian
// clean, then installed, upgraded and purged with the real dpkg into a temporary root
// (--root, --force-script-chrootless: the maintainer scripts run with DPKG_ROOT set). This
// machine has no systemd as PID 1, so systemctl and deb-systemd-* are fakes on PATH that record
// their calls (deb-systemd-helper keeps its enabled/seen state like the real one). Everything the
// maintainer scripts do to the kernel runs inside a network namespace with its own bpffs, where
// nrd-owned and foreign objects are set up first: purge must leave none of nrd's and all others.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useTopology } from '../../lib/netns.js';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));
const V1 = '0.1.0~t1';
const V2 = '0.1.0~t2';
const tmp = mkdtempSync(join(tmpdir(), 'nrd-deb-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const topo = useTopology(after, 'deb');

const deb = (v: string): string => join(tmp, 'debs', `nrd_${v}_amd64.deb`);

before(() => {
  for (const v of [V1, V2]) {
    execFileSync('bash', [join(repo, 'scripts/package.sh'), '--no-build', '--version', v, '--out', join(tmp, 'debs')], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
});

test('lintian: no error or warning (what remains is overridden with a reason)', () => {
  const r = execFileSync('lintian', ['--fail-on', 'error,warning', deb(V1)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.deepEqual(r.split('\n').filter((l) => /^[EW]: /.test(l)), []);
});

test('contents: programs, BPF objects, units, conffiles, docs; only linux-x64 native code, no maps', () => {
  const list = execFileSync('dpkg-deb', ['-c', deb(V1)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  for (const p of [
    './usr/bin/nrd -> ../lib/nrd/dist/daemon/main.js', './usr/bin/nrdctl -> ../lib/nrd/dist/daemon/cli/nrdctl.js',
    './usr/lib/nrd/bpf/nrd_xdp.bpf.o', './lib/systemd/system/nrd.service', './lib/systemd/system/sys-fs-bpf-nrd.mount',
    './lib/systemd/networkd.conf.d/nrd.conf', './etc/iproute2/rt_protos.d/nrd.conf', './etc/nrd/site.yaml',
    './usr/share/man/man8/nrd.8.gz', './usr/share/man/man8/nrdctl.8.gz', './usr/share/bash-completion/completions/nrdctl',
  ]) assert.ok(list.includes(p), `missing ${p}`);
  const natives = list.split('\n').filter((l) => l.endsWith('.node')).map((l) => l.split(/\s+/).pop());
  assert.deepEqual(natives.sort(), [
    './usr/lib/nrd/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node',
    './usr/lib/nrd/node_modules/netlink/prebuilds/linux-x64/node.napi.node',
  ]);
  assert.ok(!/\.map$|typescript\/|fast-check\//m.test(list), 'source maps or dev dependencies in the package');
  const conffiles = execFileSync('dpkg-deb', ['-I', deb(V1), 'conffiles'], { encoding: 'utf8' });
  assert.deepEqual(conffiles.trim().split('\n').sort(), ['/etc/iproute2/rt_protos.d/nrd.conf', '/etc/nrd/site.yaml']);
  const control = execFileSync('dpkg-deb', ['-f', deb(V1), 'Depends', 'Recommends'], { encoding: 'utf8' });
  assert.match(control, /nodejs \(>= 20\)/);
  assert.match(control, /Recommends: etcd-server/);
});

/** The fake systemd tools: they append "tool args" to CALLS. */
function fakeTools(dir: string, calls: string, state: string): void {
  mkdirSync(dir, { recursive: true });
  for (const t of ['systemctl', 'deb-systemd-invoke']) writeFileSync(join(dir, t), `#!/bin/sh\necho "${t} $*" >>"${calls}"\n`);
  writeFileSync(join(dir, 'deb-systemd-helper'), `#!/bin/sh
echo "deb-systemd-helper $*" >>"${calls}"
mkdir -p "${state}"
[ "$1" = --quiet ] && shift
cmd="$1"; shift
for u in "$@"; do
  case "$cmd" in
  update-state) touch "${state}/seen-$u" ;;
  enable) touch "${state}/seen-$u" "${state}/enabled-$u" ;;
  was-enabled) [ -e "${state}/seen-$u" ] || exit 0; [ -e "${state}/enabled-$u" ]; exit $? ;;
  debian-installed) [ -e "${state}/seen-$u" ]; exit $? ;;
  purge) rm -f "${state}/seen-$u" "${state}/enabled-$u" ;;
  esac
done
exit 0
`);
  for (const t of ['systemctl', 'deb-systemd-invoke', 'deb-systemd-helper']) chmodSync(join(dir, t), 0o755);
}

test('install, upgrade (keeps the edited site file, try-restarts nrd, routes unchanged), purge (nothing of nrd left)', async () => {
  const root = join(tmp, 'root');
  const out = join(tmp, 'out');
  const calls = join(tmp, 'calls');
  for (const d of ['var/lib/dpkg/updates', 'var/lib/dpkg/info', 'run/systemd/system']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'var/lib/dpkg/status'), '');
  mkdirSync(out);
  fakeTools(join(tmp, 'fake'), calls, join(tmp, 'dsh'));
  const dpkg = `PATH=${tmp}/fake:$PATH dpkg --root=${root} --log=${tmp}/dpkg.log --force-script-chrootless --force-depends`;
  const host = await topo.host('n');
  // One shell inside the namespace: `ip netns exec` gives it a mount namespace of its own, where
  // the bpffs on /sys/fs/bpf lives and dies with it.
  const script = `set -e
mount -t bpf bpf /sys/fs/bpf
ip link add up0 type veth peer name up1; ip link set up0 up; ip link set up1 up
ip addr add 192.0.2.1/24 dev up0
ip link add nrd.vxlan type vxlan id 1 local 192.0.2.1 dstport 4789
ip link add nrdv0123abcd type veth peer name ep0; ip link set nrdv0123abcd up; ip link set ep0 up
ip link add nrdx type veth peer name other0
ip link add vx0 type vxlan id 2 local 192.0.2.1 dstport 4790
ip route add 10.244.1.0/24 via 192.0.2.2 proto 220
ip route add blackhole 10.244.0.0/24 proto 220
ip route add 10.244.3.0/24 via 192.0.2.2 proto 220 table 100
ip route add 10.244.0.7/32 dev nrdv0123abcd proto 221
ip route add 10.244.2.0/24 via 192.0.2.3 proto 12
mkdir -p /sys/fs/bpf/nrd/links /sys/fs/bpf/other
bpftool map create /sys/fs/bpf/nrd/links/m type hash key 4 value 4 entries 1 name nrd_m
bpftool map create /sys/fs/bpf/other/m type hash key 4 value 4 entries 1 name other_m
nft add table inet nrd; nft add table inet other
ip -N route show table all > ${out}/routes.before
${dpkg} -i ${deb(V1)} > ${out}/install.log 2>&1
echo "# edited by the operator" >> ${root}/etc/nrd/site.yaml
${root}/usr/bin/nrd check-config ${root}/etc/nrd/site.yaml > ${out}/check.log 2>&1
echo "--- upgrade" >> ${calls}
${dpkg} -i ${deb(V2)} > ${out}/upgrade.log 2>&1
${root}/usr/bin/nrd --version > ${out}/version
cp ${root}/etc/nrd/site.yaml ${out}/site.upgraded
ip -N route show table all > ${out}/routes.upgraded
echo "--- purge" >> ${calls}
${dpkg} --purge nrd > ${out}/purge.log 2>&1
ip -N route show table all > ${out}/routes.purged
ip -d -j link show > ${out}/links.json
find /sys/fs/bpf > ${out}/pins
nft list tables > ${out}/nft
`;
  const r = await host.exec(['sh', '-c', script], { allowFailure: true });
  const read = (f: string): string => readFileSync(join(out, f), 'utf8');
  assert.equal(r.code, 0, `${r.stderr}\n${existsSync(join(out, 'purge.log')) ? read('purge.log') : ''}`);
  const [install, upgrade, purge] = readFileSync(calls, 'utf8').split(/^--- \w+\n/m) as [string, string, string];

  // First install: the mount unit enabled and started; nrd.service neither enabled nor started.
  assert.match(install, /deb-systemd-helper enable sys-fs-bpf-nrd\.mount/);
  assert.doesNotMatch(install, /enable nrd\.service|start nrd\.service|restart nrd\.service/);
  assert.match(read('check.log'), /OK/);
  // Upgrade: the edited conffile kept, nrd try-restarted (never stopped), no route touched.
  assert.match(read('site.upgraded'), /# edited by the operator\n$/);
  assert.equal(read('version').trim(), `nrd ${V2}`);
  assert.match(upgrade, /deb-systemd-invoke try-restart nrd\.service/);
  assert.doesNotMatch(upgrade, /stop nrd\.service/);
  // nrd's routes (link-local ones come and go with IPv6 autoconfiguration of the test's veths).
  const own = (f: string): string[] => read(f).split('\n').filter((l) => /proto 22[01] /.test(l));
  assert.equal(own('routes.before').length, 4);
  assert.deepEqual(own('routes.upgraded'), own('routes.before'));
  // Purge: nrd stopped, then its kernel objects, files, site file and state gone; the rest kept.
  assert.match(purge, /deb-systemd-invoke stop nrd\.service/);
  assert.match(purge, /deb-systemd-helper purge nrd\.service/);
  const routes = read('routes.purged');
  assert.doesNotMatch(routes, /proto (220|221)\b/);
  assert.match(routes, /10\.244\.2\.0\/24 via 192\.0\.2\.3 dev up0 proto 12/);
  const links = (JSON.parse(read('links.json')) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
  assert.deepEqual(links, ['lo', 'nrdx', 'other0', 'up0', 'up1', 'vx0']);
  assert.deepEqual(read('pins').trim().split('\n').filter((p) => !/\.debug$/.test(p)).sort(), ['/sys/fs/bpf', '/sys/fs/bpf/other', '/sys/fs/bpf/other/m']);
  assert.equal(read('nft').trim(), 'table inet other');
  for (const p of ['etc/nrd', 'var/lib/nrd', 'usr/lib/nrd', 'usr/bin/nrd', 'etc/iproute2/rt_protos.d/nrd.conf']) {
    assert.ok(!existsSync(join(root, p)), `${p} left after purge`);
  }
});
