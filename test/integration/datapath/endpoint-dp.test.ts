// The endpoint datapath end to end in namespaces: a node namespace with two workload namespaces
// behind veths named nrdv… (set up as the endpoints subsystem does: host side MAC = the gateway
// MAC, /32 addresses, default via 169.254.1.1 onlink, no proxy_arp) and an "external host"
// namespace behind the node's uplink. DatapathSubsystem runs in a fresh child process per step
// (endpoint-dp-agent.ts), which is what a daemon restart after kill -9 looks like.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ENDPOINT_GATEWAY_MAC, type LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import type { DatapathView } from '../../../daemon/datapath/subsystem.js';
import { DropReason } from '../../../daemon/datapath/endpoint-layout.js';
import { Cleanup, addEndpointNs, addNetns, mountBpffs, nsExec, nsRun, objectDir, run, sh } from './env.js';

const NODE_IP = '198.51.100.1';
const EXT_IP = '198.51.100.2';
const EP = [
  { id: 'ep-one', host: 'nrdv1', ip: '10.244.0.11' },
  { id: 'ep-two', host: 'nrdv2', ip: '10.244.0.12' },
];

interface AgentOut {
  view: DatapathView;
  metrics: string;
}

describe('endpoint datapath in namespaces', () => {
  const cleanup = new Cleanup();
  let nsN = '';
  let nsX = '';
  const nsE: string[] = [];
  let pinPath = '';
  let server: ChildProcess | undefined;

  before(() => {
    try {
      pinPath = join(mountBpffs(cleanup), 'nrd');
      nsN = addNetns(cleanup, 'epn');
      nsX = addNetns(cleanup, 'epx');
      nsExec(nsN, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      sh('ip', ['-n', nsN, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', nsN, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', nsX]);
      sh('ip', ['-n', nsN, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0']);
      sh('ip', ['-n', nsN, 'link', 'set', 'up0', 'up']);
      sh('ip', ['-n', nsX, 'addr', 'add', `${EXT_IP}/24`, 'dev', 'ext0']);
      sh('ip', ['-n', nsX, 'link', 'set', 'ext0', 'up']);
      sh('ip', ['-n', nsX, 'link', 'set', 'lo', 'up']);
      for (const e of EP) nsE.push(addEndpointNs(cleanup, nsN, ENDPOINT_GATEWAY_MAC, e));
      // The external host answers every TCP connection with the source address it saw.
      server = spawn('ip', ['netns', 'exec', nsX, process.execPath, '-e',
        "require('net').createServer((s)=>s.end(s.remoteAddress)).listen(8080,'0.0.0.0')"], { stdio: 'ignore' });
      cleanup.add(() => server?.kill('SIGKILL'));
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  const endpoints = (): LocalEndpoint[] => EP.map((e, i) => {
    const mac = (JSON.parse(sh('ip', ['-n', nsE[i]!, '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address;
    const idx = (JSON.parse(sh('ip', ['-n', nsN, '-j', 'link', 'show', e.host])) as Array<{ ifindex: number }>)[0]!.ifindex;
    return { id: e.id, hostIfname: e.host, hostIfindex: idx, mac, ips: [e.ip], identity: 0 };
  });
  const site = (backend: 'auto' | 'nftables' = 'auto'): Record<string, unknown> => ({
    node: { name: 'n1', address: NODE_IP, interface: 'up0' },
    cluster: { podCIDRs: ['10.244.0.0/16'] },
    datapath: { pinPath, masqueradeBackend: backend },
  });
  function agent(eps: LocalEndpoint[], backend: 'auto' | 'nftables' = 'auto', stop = false): AgentOut {
    const cmd = { site: site(backend), objectDir, endpoints: eps, stop };
    const agentPath = new URL('./endpoint-dp-agent.js', import.meta.url).pathname;
    const r = run('ip', ['netns', 'exec', nsN, process.execPath, agentPath, JSON.stringify(cmd)]);
    if (r.status !== 0) throw new Error(`agent failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as AgentOut;
  }
  const ping = (i: number, dst: string): boolean => nsRun(nsE[i]!, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-q', dst]).status === 0;
  const sourceSeenBy = (i: number, dst: string): string =>
    nsRun(nsE[i]!, process.execPath, ['-e',
      `const s=require('net').connect(8080,'${dst}');let d='';s.on('data',(b)=>d+=b);s.on('end',()=>{process.stdout.write(d)});s.setTimeout(3000,()=>process.exit(3))`]).stdout;
  const linkState = (v: DatapathView) => (v.status?.endpointDp?.endpoints ?? []).map((e) => [e.id, e.attachment?.linkId, e.attachment?.progId]);

  let first: AgentOut;

  it('attaches nrd_endpoint to each veth; ARP for the gateway is answered without proxy_arp', () => {
    first = agent(endpoints());
    const st = first.view.status;
    assert.ok(st, 'no status');
    assert.equal(st.ready, true, st.reason);
    assert.deepEqual(first.view.endpoints, { wanted: 2, attached: 2 });
    for (const e of st.endpointDp?.endpoints ?? []) assert.equal(e.attachment?.progName, 'nrd_ep_ingress');
    const arp = nsRun(nsE[0]!, 'arping', ['-c', '1', '-w', '2', '-I', 'eth0', '169.254.1.1']);
    assert.equal(arp.status, 0, arp.stdout + arp.stderr);
    assert.match(arp.stdout, /02:6e:72:64:00:01/i);
  });

  it('ping and TCP between two endpoints on the node (redirect_peer), counted per endpoint', () => {
    assert.ok(ping(0, EP[1]!.ip), 'ping ep-one → ep-two failed');
    assert.equal(sourceSeenBy(0, EP[1]!.ip), '', 'nothing listens on ep-two: expected refusal, got data');
    const listener = spawn('ip', ['netns', 'exec', nsE[1]!, process.execPath, '-e',
      "require('net').createServer((s)=>s.end('hello '+s.remoteAddress)).listen(8080,'0.0.0.0')"], { stdio: 'ignore' });
    try {
      let got = '';
      for (let i = 0; i < 20 && got === ''; i++) {
        got = sourceSeenBy(0, EP[1]!.ip);
        if (got === '') sh('sleep', ['0.1']);
      }
      assert.equal(got, `hello ${EP[0]!.ip}`);
    } finally {
      listener.kill('SIGKILL');
    }
    const out = agent(endpoints());
    assert.match(out.metrics, /nrd_datapath_endpoint_packets_total\{endpoint="ep-two",direction="to"\} [1-9]/);
    assert.match(out.metrics, /nrd_datapath_endpoint_packets_total\{endpoint="ep-one",direction="from"\} [1-9]/);
    assert.match(out.metrics, /nrd_datapath_drops_total\{reason="spoofed"\} 0/);
    // every drop reason reaches the metric, the XDP prefilter's included
    for (const reason of Object.keys(DropReason)) assert.match(out.metrics, new RegExp(`nrd_datapath_drops_total\\{reason="${reason}"\\} \\d+`), reason);
  });

  it('masquerades in BPF: the external host sees the node address, replies come back', () => {
    const out = agent(endpoints());
    assert.equal(out.view.masquerade.mode, 'bpf', out.view.masquerade.reason);
    assert.ok(ping(0, EXT_IP), 'ping to the external host failed');
    assert.equal(sourceSeenBy(0, EXT_IP), NODE_IP);
    assert.equal(nsRun(nsN, 'nft', ['list', 'table', 'inet', 'nrd']).status !== 0, true, 'nft table present in BPF mode');
  });

  it('a restart (new subsystem over the same pins, no stop) adopts everything and changes nothing', () => {
    const before = agent(endpoints());
    const again = agent(endpoints());
    assert.deepEqual(linkState(again.view), linkState(before.view));
    for (const e of again.view.status?.endpointDp?.endpoints ?? []) assert.equal(e.attachment?.updated, true);
    assert.ok(ping(1, EP[0]!.ip));
    assert.equal(sourceSeenBy(1, EXT_IP), NODE_IP);
    // SIGTERM-style stop leaves traffic flowing.
    agent(endpoints(), 'auto', true);
    assert.ok(ping(0, EP[1]!.ip));
    assert.equal(sourceSeenBy(0, EXT_IP), NODE_IP);
  });

  it('falls back to nftables masquerade (forced) and back to BPF', () => {
    const nft = agent(endpoints(), 'nftables');
    assert.equal(nft.view.masquerade.mode, 'nftables');
    const table = nsExec(nsN, 'nft', ['list', 'table', 'inet', 'nrd']);
    assert.match(table, /masquerade/);
    assert.equal(sourceSeenBy(0, EXT_IP), NODE_IP);
    assert.ok(ping(0, EP[1]!.ip), 'same-node traffic broken in nftables mode');
    const back = agent(endpoints());
    assert.equal(back.view.masquerade.mode, 'bpf');
    assert.notEqual(nsRun(nsN, 'nft', ['list', 'table', 'inet', 'nrd']).status, 0, 'nft table left behind');
    assert.equal(sourceSeenBy(0, EXT_IP), NODE_IP);
  });

  it('setEndpoints([]) detaches and clears the maps; a vanished veth\'s pin is cleaned up', () => {
    agent(endpoints());
    const out = agent([]);
    assert.deepEqual(out.view.endpoints, { wanted: 0, attached: 0 });
    for (const e of EP) assert.ok(!existsSync(join(pinPath, 'links', e.host, 'ep_ingress')), `${e.host} link pin left`);
    const eps = JSON.parse(sh('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinPath, 'maps', 'nrd_endpoints')])) as unknown[];
    assert.deepEqual(eps, []);
    const ifs = JSON.parse(sh('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinPath, 'maps', 'nrd_ep_ifs')])) as unknown[];
    assert.deepEqual(ifs, []);
    // A veth that vanishes while attached: its pinned link is removed by the next reconcile.
    agent(endpoints());
    const eps2 = endpoints();
    sh('ip', ['-n', nsN, 'link', 'del', 'nrdv2']);
    const gone = agent(eps2.slice(0, 1));
    assert.ok(!existsSync(join(pinPath, 'links', 'nrdv2')), 'pin of a vanished veth left');
    assert.deepEqual(gone.view.endpoints, { wanted: 1, attached: 1 });
  });
});
