// nrd run the way users run it: `ip netns exec NS nrd --config site.yaml` with the DEFAULT
// datapath.pinPath (/sys/fs/bpf/nrd). ip netns exec remounts /sys, so /sys/fs/bpf is plain sysfs
// there: nrd must mount a bpffs on it itself (in the command's private mount namespace, which
// ends with nrd) and come up ready, answer the API, and exit promptly on SIGTERM. Where it cannot
// use the pin path (a pinPath on tmpfs, outside /sys/fs/bpf), the datapath is not ready with a
// reason naming the path and the fix, while the API and the BGP speaker work on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { join } from 'node:path';
import type { StatusResponse, SubsystemStatus } from '../../../daemon/lib/status.js';
import { waitFor } from '../../lib/wait.js';
import { NrdSandbox, type NrdProcess } from '../daemon/harness.js';

const sb = NrdSandbox.use(after, 'pinpath');
before(() => sb.build());

function get(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('timeout', function (this: http.ClientRequest) {
        this.destroy(new Error(`GET ${path}: no answer within 5 s`));
      })
      .on('error', reject);
  });
}

async function subsystem(socket: string, name: string): Promise<SubsystemStatus> {
  const r = await get(socket, '/v1/status');
  assert.equal(r.status, 200, r.body);
  const s = (JSON.parse(r.body) as StatusResponse).subsystems.find((x) => x.name === name);
  assert.ok(s, `no subsystem ${name} in ${r.body}`);
  return s;
}

/** The sandbox's site file with the pinPath line replaced (or dropped: the default applies). */
function siteWithPinPath(socket: string, pinPath: string | undefined): string {
  const lines = sb.site({ socket, metricsPort: null }).split('\n');
  const i = lines.findIndex((l) => /^\s+pinPath:/.test(l));
  assert.ok(i > 0, 'the harness site names datapath.pinPath');
  lines[i] = pinPath === undefined ? '  attach: auto' : `  pinPath: ${pinPath}`;
  return lines.join('\n');
}

async function stopPromptly(nrd: NrdProcess): Promise<void> {
  const t0 = Date.now();
  nrd.signal('SIGTERM');
  const exit = await Promise.race([nrd.exited, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
  assert.ok(exit, `nrd did not exit within 5 s of SIGTERM; ${nrd.describe()}`);
  assert.equal(exit.code, 0, nrd.describe());
  assert.ok(Date.now() - t0 < 5000);
}

describe('nrd with the default pin path under ip netns exec', () => {
  let nrd: NrdProcess;
  const socket = (): string => join(sb.dir, 'default.sock');
  after(() => nrd?.kill());

  it('mounts a bpffs on /sys/fs/bpf itself, logs it, and the datapath comes up ready', async () => {
    const site = siteWithPinPath(socket(), undefined);
    assert.doesNotMatch(site, /pinPath/);
    nrd = sb.spawnNrd({ site, dir: join(sb.dir, 'default') });
    const dp = await waitFor(
      async () => {
        if (!nrd.running) throw new Error(`nrd exited; ${nrd.describe()}`);
        const s = await subsystem(socket(), 'datapath').catch(() => undefined);
        return s?.ready ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `datapath ready; ${nrd.describe()}` },
    );
    // Links pinned under the default pin path: the uplink's programs (the XDP prefilter only comes
    // with a deny rule; this site has none).
    const view = dp.status as { endpointDp?: { netdevs: Array<{ pin: string; hook: string }> } };
    assert.ok(view.endpointDp?.netdevs.some((a) => a.hook === 'tc-egress' && a.pin.startsWith('/sys/fs/bpf/nrd/links/')), JSON.stringify(view));
    const mounted = nrd.logs.find((l) => l.subsystem === 'datapath' && l.mountpoint === '/sys/fs/bpf');
    assert.ok(mounted, `no log line about the bpffs mount; ${JSON.stringify(nrd.logs.slice(-10))}`);
    const r = await get(socket(), '/v1/datapath');
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { status: { ready: boolean } }).status.ready, true);
  });

  it('exits promptly on SIGTERM', () => stopPromptly(nrd));
});

describe('nrd with a pin path it cannot use (tmpfs, outside /sys/fs/bpf)', () => {
  let nrd: NrdProcess;
  const socket = (): string => join(sb.dir, 'tmpfs.sock');
  const pinPath = `/dev/shm/nrdt-pins-${process.pid}/nrd`;
  after(() => nrd?.kill());

  it('datapath not ready, naming the path and the fix; API and BGP work on', async () => {
    nrd = sb.spawnNrd({ site: siteWithPinPath(socket(), pinPath), dir: join(sb.dir, 'tmpfs') });
    const dp = await waitFor(
      async () => {
        if (!nrd.running) throw new Error(`nrd exited; ${nrd.describe()}`);
        const s = await subsystem(socket(), 'datapath').catch(() => undefined);
        return s && !s.ready && s.reason?.includes(pinPath) ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `datapath not ready with a reason; ${nrd.describe()}` },
    );
    assert.match(dp.reason ?? '', /is not on a bpf filesystem/);
    assert.match(dp.reason ?? '', /mount -t bpf bpffs/);
    const bgp = await waitFor(async () => {
      const s = await subsystem(socket(), 'bgp');
      return s.ready ? s : undefined;
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'bgp ready' });
    assert.equal(bgp.ready, true);
    const view = await get(socket(), '/v1/datapath');
    assert.equal(view.status, 200, view.body);
    assert.match((JSON.parse(view.body) as { lastError: string }).lastError, /mount -t bpf bpffs/);
  });

  it('exits promptly on SIGTERM', () => stopPromptly(nrd));
});
