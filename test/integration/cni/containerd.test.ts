// containerd (Debian's 1.6) with nrd-cni: a containerd started by the test in a temp root and state
// with its own socket (CRI plugin disabled, native snapshotter: no overlay needed), the busybox
// image imported from an OCI archive podman made locally (nothing pulled), and `ctr run --cni`.
// ctr 1.6 has no flags for the CNI directories (it reads /etc/cni/net.d and /opt/cni/bin), so each
// ctr runs in a private mount namespace where the test's directories are mounted over those paths:
// the system's directories are never read or changed. The container gets an address of node 1's
// CIDR and pings a workload on node 2; `--rm` (DEL) leaves no veth and no record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addWorkload, type Workload } from '../e2e/endpoint-helpers.js';
import { Fabric, POD_POOL, type FabricNode } from '../../lib/fabric.js';
import { run, spawnProcess, type ManagedProcess, type RunResult } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import type { LocalEndpointsResponse } from '../../../daemon/endpoints/api-types.js';
import { busyboxTar, cniBinDir, cniCacheCleanup, cniConfDir } from './cni-lib.js';

const IMAGE = 'localhost/nrd-busybox:test';
const NS = 'nrdt';
let dir = '';
let sock = '';
let containerd: ManagedProcess | undefined;
let bin = '';
let confDir = '';

/** ctr against the test's containerd; with cni, inside a mount namespace showing the test's CNI dirs. */
function ctr(args: readonly string[], opts: { cni?: boolean; allowFailure?: boolean } = {}): Promise<RunResult> {
  const base = ['ctr', '-a', sock, '-n', NS, ...args];
  if (!opts.cni) return run(base, { timeoutMs: 60_000, allowFailure: opts.allowFailure ?? false });
  const script = `mount --bind "$1" /etc/cni/net.d && mount -t tmpfs nrdt-cni /opt && mkdir -p /opt/cni && ln -s "$2" /opt/cni/bin && shift 2 && exec "$@"`;
  return run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', confDir, bin, ...base], { timeoutMs: 60_000, allowFailure: opts.allowFailure ?? false });
}

after(async () => {
  if (containerd) {
    await ctr(['tasks', 'kill', '-s', 'SIGKILL', 'cc1'], { allowFailure: true });
    await ctr(['containers', 'rm', 'cc1'], { allowFailure: true });
    await containerd.stop();
  }
});

const fabric = Fabric.use(after, { tag: 'cnictd', tors: 1, mode: 'auto', pools: [POD_POOL], nodes: [{}, {}] });
// Last: ctr --cni (libcni) creates /var/lib/cni/results; removed when this test created it.
after(cniCacheCleanup());
let n1: FabricNode;
let w2: Workload;

before(async () => {
  await fabric.build();
  [n1] = fabric.nodes as [FabricNode, FabricNode];
  await Promise.all(fabric.nodes.map((n) => n.waitCidr()));
  await fabric.waitSessions();
  await Promise.all(fabric.nodes.map((n) => n.waitReady()));
  w2 = await addWorkload(fabric, fabric.nodes[1]!, 'ctdw2');
  dir = fabric.topo.tmpdir('containerd');
  sock = join(dir, 'containerd.sock');
  bin = cniBinDir(dir);
  confDir = cniConfDir(dir, n1.socket);
  writeFileSync(join(dir, 'config.toml'), `version = 2\nroot = "${join(dir, 'root')}"\nstate = "${join(dir, 'state')}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`);
  containerd = spawnProcess(['containerd', '--config', join(dir, 'config.toml')], { name: 'containerd' });
  await waitFor(async () => ((await ctr(['version'], { allowFailure: true })).code === 0 ? true : undefined), { timeoutMs: 20_000, intervalMs: 200, what: 'containerd answering' });
  // The image: a busybox rootfs → podman (temp storage) → OCI archive → containerd.
  const pdir = join(dir, 'podman');
  const penv = ['--root', join(pdir, 'root'), '--runroot', join(pdir, 'runroot'), '--storage-driver', 'vfs'];
  const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: '/dev/null' };
  await run(['podman', ...penv, 'import', await busyboxTar(dir), IMAGE], { env });
  await run(['podman', ...penv, 'save', '--format', 'oci-archive', '-o', join(dir, 'img.tar'), IMAGE], { env });
  await run(['podman', ...penv, 'rmi', '-af'], { env, allowFailure: true });
  await ctr(['images', 'import', '--snapshotter', 'native', join(dir, 'img.tar')]);
});

test('ctr run --cni: the container gets an address of node 1\'s CIDR, pings a workload on node 2; --rm leaves nothing', async () => {
  let last = '';
  await waitFor(
    async () => {
      const r = await ctr(['run', '--rm', '--cni', '--snapshotter', 'native', IMAGE, 'cc1', 'sh', '-c', `ip -4 -o addr show dev eth0; ping -c 1 -W 2 ${w2.v4}`], { cni: true, allowFailure: true });
      last = r.stdout + r.stderr;
      return r.code === 0 ? true : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 500, what: `ctr container on ${n1.name} → ${w2.v4}: ${last}` },
  );
  const m = /inet (\d+\.\d+\.\d+\.\d+)\/32/.exec(last);
  assert.ok(m, last);
  assert.equal(m[1]!.split('.').slice(0, 3).join('.'), n1.cidr!.split('.').slice(0, 3).join('.'), `${m[1]} in ${n1.cidr}`);
  assert.match(last, /1 packets received|1 packets transmitted, 1 packets received/);
  // --rm ran DEL: nothing of the container is left on node 1.
  await waitFor(async () => ((await n1.api<LocalEndpointsResponse>('/v1/local/endpoints')).endpoints.length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 200, what: 'no endpoint on n1' });
  assert.doesNotMatch((await n1.host.ip(['-o', 'link', 'show'])).stdout, /nrdv[0-9a-f]/);
});
