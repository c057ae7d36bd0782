// The shipped systemd units pass `systemd-analyze verify`, with binary paths pointed at this
// build so that the executable checks resolve; and the companions say what they must.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const unitDir = join(root, 'systemd');
const mainJs = join(root, 'dist', 'daemon', 'main.js');

test('systemd-analyze verify accepts nrd.service and the bpffs mount unit', (t) => {
  assert.ok(existsSync(mainJs), `build first: ${mainJs} missing`);
  const dir = mkdtempSync(join(tmpdir(), 'nrd-units-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const service = readFileSync(join(unitDir, 'nrd.service'), 'utf8');
  assert.match(service, /^ExecStart=\/usr\/bin\/nrd --config \/etc\/nrd\/site\.yaml$/m);
  // /usr/bin/nrd is where a package installs it; here it is node + this build's main.js.
  writeFileSync(join(dir, 'nrd.service'), service.replaceAll('/usr/bin/nrd', `${process.execPath} ${mainJs}`));
  copyFileSync(join(unitDir, 'sys-fs-bpf-nrd.mount'), join(dir, 'sys-fs-bpf-nrd.mount'));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', 'nrd.service', 'sys-fs-bpf-nrd.mount'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stderr}${r.stdout}`);
  assert.equal(r.stderr.trim(), '', `systemd-analyze warned:\n${r.stderr}`);
});

test('nrd.service carries the contract with systemd', () => {
  const s = readFileSync(join(unitDir, 'nrd.service'), 'utf8');
  const want: RegExp[] = [
    /^Type=notify$/m,
    /^NotifyAccess=main$/m,
    /^ExecStartPre=\/usr\/bin\/nrd check-config \/etc\/nrd\/site\.yaml$/m,
    /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m,
    /^WatchdogSec=30$/m,
    /^Restart=on-failure$/m,
    /^RuntimeDirectory=nrd$/m,
    /^StateDirectory=nrd$/m,
    /^LimitMEMLOCK=infinity$/m,
    // The BFD thread's SCHED_RR 10 (else nice -20) without CAP_SYS_NICE.
    /^LimitRTPRIO=10$/m,
    /^LimitNICE=-20$/m,
    /^RestrictRealtime=no$/m,
    /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_BIND_SERVICE CAP_SYS_ADMIN$/m,
    /^AmbientCapabilities=CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_BIND_SERVICE CAP_SYS_ADMIN$/m,
    /^After=.*network-online\.target/m,
    /^Wants=.*network-online\.target/m,
    /^After=.*sys-fs-bpf\.mount/m,
  ];
  for (const re of want) assert.match(s, re);
});

test('companions: networkd keeps foreign routes, iproute2 names protocol 220 nrd', () => {
  const networkd = readFileSync(join(unitDir, 'nrd-networkd.conf'), 'utf8');
  assert.match(networkd, /^\[Network\]\nManageForeignRoutes=no$/m);
  const protos = readFileSync(join(unitDir, 'rt_protos.d', 'nrd.conf'), 'utf8');
  assert.match(protos, /^220\s+nrd$/m);
});
