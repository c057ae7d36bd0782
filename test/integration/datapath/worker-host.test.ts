// The datapath worker (daemon/datapath/host.ts, worker.ts): the objects load and the maps are read
// in the worker thread, results and bigint counters cross the typed protocol, and an NrdError
// thrown in the worker arrives as an NrdError with its kind and code (readiness reasons and API
// codes depend on it). Root: BPF_PROG_LOAD; pins go to a private bpffs, nothing is attached.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerDatapathHost } from '../../../daemon/datapath/host.js';
import { NrdError } from '../../../daemon/lib/errors.js';
import { Cleanup, mountBpffs, objectDir } from './env.js';

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('datapath in a worker thread', () => {
  it('loads the objects, reconciles the deny list and returns bigint counters', async () => {
    const bpffs = mountBpffs(cleanup);
    const host = new WorkerDatapathHost();
    try {
      const pinPath = join(bpffs, 'nrd');
      const st = await host.start({ pinPath, objectDir, deny: ['203.0.113.0/24', '2001:db8::/32'] });
      assert.equal(st.ready, true, st.reason);
      assert.deepEqual(st.deny, { ipv4: 1, ipv6: 1 });
      // the prefilter's maps and the flow-event maps it shares with the endpoint objects
      assert.deepEqual(readdirSync(join(pinPath, 'maps')).sort(),
        ['nrd_deny4', 'nrd_deny6', 'nrd_ev_bucket', 'nrd_ev_stats', 'nrd_events', 'nrd_flow_seen', 'nrd_if_stats', 'nrd_xdp_stats']);
      const stats = await host.stats();
      assert.equal(typeof stats.xdp.pass.packets, 'bigint');
      const again = await host.reconcile({ pinPath, objectDir, deny: [] });
      assert.deepEqual(again.deny, { ipv4: 0, ipv6: 0 });
      await host.stop();
    } finally {
      await host.close();
    }
  });

  it('an NrdError thrown in the worker arrives with its kind and code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nrdt-notbpf-'));
    cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
    const host = new WorkerDatapathHost();
    try {
      await assert.rejects(host.start({ pinPath: join(dir, 'nrd'), objectDir }), (e: unknown) => {
        assert.ok(e instanceof NrdError, String(e));
        assert.equal(e.kind, 'unavailable');
        assert.equal(e.code, 'pin_path_not_bpffs');
        assert.match(e.message, /mount -t bpf bpffs/);
        return true;
      });
    } finally {
      await host.close();
    }
  });
});
