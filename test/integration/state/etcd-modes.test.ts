// The state subsystem against the ways etcd can be reached, with real etcd 3.4: the embedded
// default (no endpoints: nrd supervises its own etcd with data in node.stateDir, reachable only
// through a unix socket there: an unprivileged uid cannot write a key), TLS with client
// certificates (a CA and certificates made by openssl at test time), and user/password with etcd
// auth enabled (RBAC scoped to the prefix); wrong credentials leave it not ready with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Router } from '../../../daemon/api/router.js';
import { registerStateRoutes } from '../../../daemon/api/state-routes.js';
import { loadConfigObject, type NrdConfig } from '../../../daemon/config/index.js';
import type { Readiness } from '../../../daemon/lib/health.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import type { ClusterStateOptions } from '../../../daemon/state/cluster-state.js';
import { StateSubsystem } from '../../../daemon/state/subsystem.js';
import { startEtcd } from '../../lib/etcd.js';
import { until } from './helpers.js';

function config(o: { etcd?: Record<string, unknown>; stateDir?: string; name?: string }): NrdConfig {
  const r = loadConfigObject(
    {
      node: { name: o.name ?? 'm1', address: '192.0.2.1', ...(o.stateDir ? { stateDir: o.stateDir } : {}) },
      cluster: { podCIDRs: ['10.244.0.0/16'] },
      ...(o.etcd ? { etcd: o.etcd } : {}),
    },
    { env: {} },
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

interface Running {
  sub: StateSubsystem;
  router: Router;
  readiness: () => Readiness;
  stop: () => Promise<void>;
}

async function run(cfg: NrdConfig, overrides: Partial<ClusterStateOptions> = {}): Promise<Running> {
  const router = new Router();
  const sub = new StateSubsystem({ metrics: new Registry(), overrides: { maxBackoffMs: 500, log: silentLogger(), ...overrides }, readinessIntervalMs: 50 });
  registerStateRoutes(router, sub.queries);
  let last: Readiness = { ready: false };
  await sub.start({ config: cfg, log: silentLogger(), ready: (r) => (last = r) });
  return { sub, router, readiness: () => last, stop: () => Promise.resolve(sub.stop()) };
}

async function putService(router: Router, name: string): Promise<number> {
  const res = await router.handle({ method: 'PUT', url: `/v1/services/${name}`, body: JSON.stringify({ vip: '10.96.0.1', port: 53, protocol: 'udp' }) });
  return res.status;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `etcdctl put` on the embedded etcd's socket, as root or as an unprivileged uid. */
function putAs(endpoint: string, key: string, unprivileged: boolean): { ok: boolean; out: string } {
  const etcdctl = ['etcdctl', `--endpoints=${endpoint}`, '--dial-timeout=2s', '--command-timeout=3s', 'put', key, 'x'];
  const argv = unprivileged ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', ...etcdctl] : etcdctl;
  try {
    return { ok: true, out: execFileSync(argv[0]!, argv.slice(1), { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: Buffer }).stderr ?? e) };
  }
}

/** connect(2) to a unix socket as uid 65534: the error code, or "connected". */
function connectAs(path: string): string {
  const script = `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
  return execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '-e', script]).toString().trim();
}

/** TCP sockets the process `pid` listens on (ss shows the owning process of each). */
function tcpListenersOf(pid: number): string[] {
  return execFileSync('ss', ['-Htlnp']).toString().split('\n').filter((l) => l.includes(`pid=${pid},`));
}

test('embedded etcd: no endpoints → nrd starts its own etcd in node.stateDir, serves, stops it, finds its data again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-embedded-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A state dir others could enter: nrd must close it before its etcd socket appears there.
  chmodSync(dir, 0o755);
  // The schema's default is one endpoint; "no endpoints" is the empty list.
  const base = config({ stateDir: dir });
  const cfg: NrdConfig = { ...base, etcd: { ...base.etcd, endpoints: [] } };
  const a = await run(cfg);
  let pid = 0;
  t.after(async () => {
    await a.stop();
    if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  await until(() => a.readiness().ready, 30_000, `embedded ready (${a.readiness().reason})`);
  const st = a.sub.status() as { etcd: { embedded?: { pid: number; running: boolean; endpoint: string; dataDir: string } }; podCidrs: Record<string, string> };
  assert.ok(st.etcd.embedded?.running, JSON.stringify(st));
  assert.equal(st.etcd.embedded.endpoint, `unix://${join(dir, 'etcd.sock:0')}`);
  assert.equal(st.etcd.embedded.dataDir, join(dir, 'etcd'));
  pid = st.etcd.embedded.pid;
  const cidr = st.podCidrs.ipv4;
  assert.equal(await putService(a.router, 'dns'), 200);
  assert.ok(existsSync(join(dir, 'etcd', 'member')), 'etcd data in node.stateDir/etcd');

  // Nobody but root reaches it: the state dir is 0700, etcd listens on no TCP port, and an
  // unprivileged uid cannot write a key through the socket (root can: the check itself works).
  assert.equal(statSync(dir).mode & 0o777, 0o700, 'node.stateDir is 0700');
  // pid is setpriv's when etcd runs under it: setpriv execs etcd, so the pid is etcd's.
  assert.deepEqual(tcpListenersOf(pid), [], 'the embedded etcd listens on no TCP port');
  const evil = putAs(st.etcd.embedded.endpoint, '/nrd/v1/nodes/evil', true);
  assert.equal(evil.ok, false, `an unprivileged user wrote a key: ${evil.out}`);
  // etcdctl only says "deadline exceeded"; the reason is the kernel's, seen on a raw connect(2).
  assert.equal(connectAs(join(dir, 'etcd.sock:0')), 'EACCES');
  const rootPut = putAs(st.etcd.embedded.endpoint, '/nrdt/probe', false);
  assert.equal(rootPut.ok, true, rootPut.out);

  await a.stop();
  await until(() => !pidAlive(pid), 10_000, 'embedded etcd stopped with the subsystem');
  // A new life on the same state dir: same data, so the same CIDR and the service are still there
  // (and the socket file the first etcd left behind does not stop the second from listening).
  const b = await run(cfg);
  t.after(() => b.stop());
  await until(() => b.readiness().ready, 30_000, `embedded ready again (${b.readiness().reason})`);
  assert.equal(b.sub.currentCidrs()?.ipv4, cidr);
  const svcs = await b.router.handle({ method: 'GET', url: '/v1/services', body: '' });
  assert.deepEqual((svcs.body as { services: { name: string }[] }).services.map((s) => s.name), ['dns']);
  pid = (b.sub.status() as { etcd: { embedded: { pid: number } } }).etcd.embedded.pid;
});

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
function makeCerts(dir: string): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=nrdt-ca']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', '127.0.0.1'],
    ['client', 'nrd'],
  ] as const) {
    openssl(dir, ['req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
  }
}

test('TLS with client certificates: works with the client cert; without one, not ready and says why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  const f = (n: string): string => join(dir, n);
  const etcd = await startEtcd({
    scheme: 'https',
    extraArgs: [`--cert-file=${f('server.crt')}`, `--key-file=${f('server.key')}`, '--client-cert-auth', `--trusted-ca-file=${f('ca.crt')}`],
    probeArgs: [`--cacert=${f('ca.crt')}`, `--cert=${f('client.crt')}`, `--key=${f('client.key')}`],
  });
  t.after(() => etcd.stop());
  assert.match(etcd.endpoints[0]!, /^https:/);
  const good = await run(config({ name: 'tls-good', etcd: { endpoints: etcd.endpoints, prefix: '/tls', tls: { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key') } } }));
  t.after(() => good.stop());
  const noCert = await run(config({ name: 'tls-nocert', etcd: { endpoints: etcd.endpoints, prefix: '/tls', tls: { ca: f('ca.crt') } } }));
  t.after(() => noCert.stop());
  await until(() => good.readiness().ready, 20_000, `TLS ready (${good.readiness().reason})`);
  assert.equal(await putService(good.router, 'tls-svc'), 200);
  assert.match(etcd.etcdctl(['get', '/tls/v1/services/tls-svc', '--print-value-only']), /"vip":"10\.96\.0\.1"/);
  await until(() => /^etcd unreachable since .*\(/.test(noCert.readiness().reason ?? ''), 10_000, `no-cert reason (${noCert.readiness().reason})`);
  assert.equal(noCert.readiness().ready, false);
  assert.equal(etcd.etcdctl(['get', '/tls/v1/nodes/tls-nocert', '--print-value-only']).trim(), '', 'the refused client wrote nothing');
});

test('user/password with etcd auth enabled (RBAC on the prefix): works; a wrong password is named in readiness', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const root = '--user=root:rootpw';
  etcd.etcdctl(['user', 'add', 'root:rootpw']);
  etcd.etcdctl(['user', 'grant-role', 'root', 'root']);
  etcd.etcdctl(['role', 'add', 'nrd']);
  etcd.etcdctl(['role', 'grant-permission', 'nrd', '--prefix=true', 'readwrite', '/auth/']);
  etcd.etcdctl(['user', 'add', 'nrd:nrdpw']);
  etcd.etcdctl(['user', 'grant-role', 'nrd', 'nrd']);
  etcd.etcdctl(['auth', 'enable']);
  assert.throws(() => etcd.etcdctl(['get', '/auth/x']), /user name is empty|permission denied|authentication/i, 'auth is really on');
  const good = await run(config({ name: 'auth-good', etcd: { endpoints: etcd.endpoints, prefix: '/auth', username: 'nrd', password: 'nrdpw' } }));
  t.after(() => good.stop());
  const bad = await run(config({ name: 'auth-bad', etcd: { endpoints: etcd.endpoints, prefix: '/auth', username: 'nrd', password: 'wrong' } }));
  t.after(() => bad.stop());
  await until(() => good.readiness().ready, 20_000, `auth ready (${good.readiness().reason})`);
  assert.equal(await putService(good.router, 'auth-svc'), 200);
  assert.match(etcd.etcdctl([root, 'get', '/auth/v1/services/auth-svc', '--print-value-only']), /"protocol":"udp"/);
  await until(() => /^etcd refuses nrd's credentials since .*authentication failed/.test(bad.readiness().reason ?? ''), 10_000, `bad-password reason (${bad.readiness().reason})`);
  assert.equal(etcd.etcdctl([root, 'get', '/auth/v1/nodes/auth-bad', '--print-value-only']).trim(), '');
});
