// podman (Debian's 4.3, CNI backend) with nrd-cni on two nodes of a test fabric: a test-owned
// containers.conf (cni_plugin_dirs, network_config_dir), storage root and run root in temp dirs
// (vfs: no overlay needed), runc with cgroupfs (crun refuses this machine's hybrid cgroup layout),
// an image imported from a busybox-static rootfs. podman runs in each node's network namespace
// (nsenter --net: `ip netns exec` would remount /sys and hide the cgroup hierarchy runc needs).
// Containers on the two nodes ping each other and an external host (masquerade); `podman rm -f`
// leaves no veth and no record. The system's /etc/cni/net.d and /etc/containers are never read.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Fabric, POD_POOL, type FabricNode } from '../../lib/fabric.js';
import type { Host } from '../../lib/netns.js';
import { run, type RunResult } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import type { LocalEndpointsResponse } from '../../../daemon/endpoints/api-types.js';
import { busyboxTar, cniBinDir, cniCacheCleanup, cniConfDir } from './cni-lib.js';

const EXT_IP = '203.0.113.2';
const EXT_TOR_IP = '203.0.113.1';
const IMAGE = 'localhost/nrd-busybox:test';

/** One node's podman: its dirs and its network namespace. */
interface Podman {
  node: FabricNode;
  dir: string;
  conf: string;
}
const podmans: Podman[] = [];

function podman(p: Podman, args: readonly string[], opts: { allowFailure?: boolean; input?: string } = {}): Promise<RunResult> {
  return run(['nsenter', `--net=/run/netns/${p.node.host.ns}`, 'podman', '--root', join(p.dir, 'root'), '--runroot', join(p.dir, 'runroot'), '--storage-driver', 'vfs', ...args], {
    env: { ...process.env, CONTAINERS_CONF: p.conf, CONTAINERS_REGISTRIES_CONF: '/dev/null', CONTAINERS_STORAGE_CONF: join(p.dir, 'storage.conf') },
    timeoutMs: 60_000,
    ...opts,
  });
}

// Registered before the fabric's teardown so that it runs first: containers go while nrd and the
// namespaces are still there (their DEL then succeeds), then podman's state dirs.
after(async () => {
  for (const p of podmans) {
    await podman(p, ['rm', '-af', '-t', '0'], { allowFailure: true });
    await podman(p, ['rmi', '-af'], { allowFailure: true });
  }
});

const fabric = Fabric.use(after, { tag: 'cnipm', tors: 1, mode: 'auto', pools: [POD_POOL], nodes: [{}, {}] });
// Last: podman's CNI backend creates /var/lib/cni/results for its cached results; once the
// containers are gone it is empty, and removed when this test created it.
after(cniCacheCleanup());
let ext: Host;

before(async () => {
  await fabric.build();
  await Promise.all(fabric.nodes.map((n) => n.waitCidr()));
  await fabric.waitSessions();
  await Promise.all(fabric.nodes.map((n) => n.waitReady()));
  ext = await fabric.topo.host('ext');
  await fabric.topo.link(ext, fabric.tors[0]!.host, { nameA: 'eth0', nameB: 'ext', addrA: `${EXT_IP}/29`, addrB: `${EXT_TOR_IP}/29` });
  await ext.addRoute('192.0.2.0/24', { via: EXT_TOR_IP });
  for (const node of fabric.nodes) {
    const dir = fabric.topo.tmpdir(`podman-${node.name}`);
    const conf = join(dir, 'containers.conf');
    writeFileSync(
      conf,
      [
        '[containers]',
        // podman's default nofile and nproc limits may be above this process's hard limits, which
        // runc may not raise: the container gets ours.
        'default_ulimits = []',
        'pids_limit = 0',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${cniBinDir(dir)}"]`,
        `network_config_dir = "${cniConfDir(dir, node.socket)}"`,
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        'runtime = "runc"',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'root')}"\nrunroot = "${join(dir, 'runroot')}"\n`);
    const p: Podman = { node, dir, conf };
    podmans.push(p);
    await podman(p, ['import', await busyboxTar(dir), IMAGE]);
  }
});

/** The container's eth0 IPv4 address, as the container itself sees it. */
async function containerIp(p: Podman, name: string): Promise<string> {
  const out = (await podman(p, ['exec', name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout;
  const m = /inet (\d+\.\d+\.\d+\.\d+)\/32/.exec(out);
  assert.ok(m, `${name}: no /32 on eth0: ${out}`);
  return m[1]!;
}

async function ping(p: Podman, name: string, addr: string): Promise<true | undefined> {
  const r = await podman(p, ['exec', name, 'ping', '-c', '1', '-W', '1', addr], { allowFailure: true });
  return r.code === 0 ? true : undefined;
}

test('podman run --network nrd on two nodes: addresses from each node\'s CIDR, ping across nodes and to an external host; rm -f leaves nothing', async () => {
  const [p1, p2] = podmans as [Podman, Podman];
  for (const [p, name] of [[p1, 'pm1'], [p2, 'pm2']] as const) {
    const r = await podman(p, ['run', '-d', '--name', name, '--network', 'nrd', '--ulimit', 'host', IMAGE, 'sleep', '600'], { allowFailure: true });
    assert.equal(r.code, 0, `podman run on ${p.node.name}: ${r.stderr}`);
  }
  const ip1 = await containerIp(p1, 'pm1');
  const ip2 = await containerIp(p2, 'pm2');
  const inCidr = (ip: string, cidr: string): boolean => ip.split('.').slice(0, 3).join('.') === cidr.split('.').slice(0, 3).join('.');
  assert.ok(inCidr(ip1, p1.node.cidr!), `${ip1} in ${p1.node.cidr}`);
  assert.ok(inCidr(ip2, p2.node.cidr!), `${ip2} in ${p2.node.cidr}`);
  // nrd knows them as CNI endpoints, with the network label.
  for (const p of [p1, p2]) {
    const l = await p.node.api<LocalEndpointsResponse>('/v1/local/endpoints');
    assert.equal(l.endpoints.length, 1, JSON.stringify(l));
    assert.match(l.endpoints[0]!.name, /^cni:[0-9a-f]{64}:eth0$/);
    assert.equal(l.endpoints[0]!.labels['cni.nrd.io/network'], 'nrd');
  }
  await waitFor(() => ping(p1, 'pm1', ip2), { timeoutMs: 20_000, intervalMs: 300, what: `pm1 → pm2 (${ip2})` });
  await waitFor(() => ping(p2, 'pm2', ip1), { timeoutMs: 20_000, intervalMs: 300, what: `pm2 → pm1 (${ip1})` });
  await waitFor(() => ping(p1, 'pm1', EXT_IP), { timeoutMs: 20_000, intervalMs: 300, what: 'pm1 → external host (masquerade)' });
  await waitFor(() => ping(p2, 'pm2', EXT_IP), { timeoutMs: 20_000, intervalMs: 300, what: 'pm2 → external host (masquerade)' });

  await podman(p1, ['rm', '-f', '-t', '0', 'pm1']);
  await podman(p2, ['rm', '-f', '-t', '0', 'pm2']);
  for (const p of [p1, p2]) {
    const links = (await p.node.host.ip(['-o', 'link', 'show'])).stdout;
    assert.doesNotMatch(links, /nrdv[0-9a-f]/, `${p.node.name}: a veth is left`);
    const l = await p.node.api<LocalEndpointsResponse>('/v1/local/endpoints');
    assert.deepEqual(l.endpoints, []);
  }
  assert.deepEqual(fabric.etcd.etcdctl(['get', '--prefix', '/nrd/v1/endpoints/', '--keys-only']).trim(), '');
  assert.deepEqual(fabric.etcd.etcdctl(['get', '--prefix', '/nrd/v1/ips/', '--keys-only']).trim(), '');
});
