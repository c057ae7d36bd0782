// Shared fixtures for the session unit tests: a config, the peer's OPEN, one payload per FSM event,
// and a driver that walks an FSM to any state with a fake clock.
import { sessionConfig, type SessionConfig } from '../../../../daemon/bgp/session/config.js';
import { initialState, step, type FsmAction, type FsmEvent, type FsmEventType, type FsmState, type StateName } from '../../../../daemon/bgp/session/fsm.js';
import type { BgpError, OpenMessage } from '../../../../daemon/bgp/types.js';

export const T0 = 1_000_000;

export function cfg(over: Partial<SessionConfig> = {}): SessionConfig {
  return sessionConfig({
    localAs: 65001,
    peerAs: 65002,
    localId: '192.0.2.1',
    holdTime: 9,
    connectRetryTime: 5,
    connectRetryMax: 120,
    idleHoldTime: 2,
    idleHoldMax: 60,
    ...over,
  });
}

export function peerOpen(over: Partial<OpenMessage> = {}, caps: Partial<OpenMessage['capabilities']> = {}): OpenMessage {
  return {
    type: 'open',
    version: 4,
    myAs: 65002,
    holdTime: 6,
    bgpId: '192.0.2.2',
    capabilities: {
      multiprotocol: [
        { afi: 1, safi: 1 },
        { afi: 2, safi: 1 },
      ],
      routeRefresh: true,
      enhancedRouteRefresh: false,
      extendedMessage: false,
      fourOctetAs: 65002,
      unknown: [],
      ...caps,
    },
    ...over,
  };
}

const err = (code: number, subcode: number, reason: string): BgpError => ({
  code,
  subcode,
  data: new Uint8Array(0),
  action: 'session-reset',
  reason,
});

/** One representative event of every type. */
export const EVENTS: Record<FsmEventType, FsmEvent> = {
  ManualStart: { type: 'ManualStart' },
  ManualStop: { type: 'ManualStop' },
  AutomaticStart: { type: 'AutomaticStart' },
  ManualStart_with_PassiveTcpEstablishment: { type: 'ManualStart_with_PassiveTcpEstablishment' },
  AutomaticStart_with_PassiveTcpEstablishment: { type: 'AutomaticStart_with_PassiveTcpEstablishment' },
  AutomaticStop: { type: 'AutomaticStop' },
  ConnectRetryTimer_Expires: { type: 'ConnectRetryTimer_Expires' },
  HoldTimer_Expires: { type: 'HoldTimer_Expires' },
  KeepaliveTimer_Expires: { type: 'KeepaliveTimer_Expires' },
  DelayOpenTimer_Expires: { type: 'DelayOpenTimer_Expires' },
  IdleHoldTimer_Expires: { type: 'IdleHoldTimer_Expires' },
  Tcp_CR_Acked: { type: 'Tcp_CR_Acked' },
  TcpConnectionConfirmed: { type: 'TcpConnectionConfirmed' },
  TcpConnectionFails: { type: 'TcpConnectionFails' },
  BGPOpen: { type: 'BGPOpen', message: peerOpen() },
  BGPHeaderErr: { type: 'BGPHeaderErr', error: err(1, 2, 'bad length') },
  BGPOpenMsgErr: { type: 'BGPOpenMsgErr', error: err(2, 4, 'unsupported optional parameter') },
  OpenCollisionDump: { type: 'OpenCollisionDump' },
  NotifMsgVerErr: { type: 'NotifMsgVerErr', message: { type: 'notification', code: 2, subcode: 1, data: Uint8Array.of(0, 4) } },
  NotifMsg: { type: 'NotifMsg', message: { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) } },
  KeepAliveMsg: { type: 'KeepAliveMsg' },
  UpdateMsg: { type: 'UpdateMsg', message: { type: 'update', withdrawn: [], attrs: null, nlri: [] }, errors: [] },
  UpdateMsgErr: { type: 'UpdateMsgErr', error: err(3, 1, 'malformed attribute list') },
  RouteRefreshMsg: { type: 'RouteRefreshMsg', message: { type: 'route-refresh', afi: 1, safi: 1, subtype: 0 } },
  RouteRefreshMsgErr: { type: 'RouteRefreshMsgErr', error: err(7, 1, 'invalid length') },
  PeerAlive: { type: 'PeerAlive' },
};

/** Feed events in order at time `now`, failing loudly if a step lands somewhere unexpected. */
export function drive(s: FsmState, events: FsmEvent[], now = T0): { state: FsmState; actions: FsmAction[] } {
  let actions: FsmAction[] = [];
  for (const e of events) {
    const r = step(s, e, now);
    s = r.state;
    actions = r.actions;
  }
  return { state: s, actions };
}

/** An FSM in `name`, reached by the natural path (active start unless the state needs passive). */
export function reach(name: StateName | 'IdleAfterError', c: SessionConfig = cfg(), seed = 42): FsmState {
  const s0 = initialState(c, seed);
  const path: Record<StateName | 'IdleAfterError', FsmEvent[]> = {
    Idle: [],
    IdleAfterError: [EVENTS.ManualStart, EVENTS.TcpConnectionFails],
    Connect: [EVENTS.ManualStart],
    Active: [EVENTS.ManualStart_with_PassiveTcpEstablishment],
    OpenSent: [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked],
    OpenConfirm: [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked, EVENTS.BGPOpen],
    Established: [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked, EVENTS.BGPOpen, EVENTS.KeepAliveMsg],
  };
  const s = drive(s0, path[name]).state;
  const want = name === 'IdleAfterError' ? 'Idle' : name;
  if (s.name !== want) throw new Error(`reach(${name}) ended in ${s.name}`);
  return s;
}

/** Actions without timer bookkeeping, as short words: connect, close, >open, >ka, >N4/0, deliver, up, down. */
export function summary(actions: readonly FsmAction[]): string {
  const out: string[] = [];
  for (const a of actions) {
    switch (a.type) {
      case 'connect':
      case 'close':
        out.push(a.type);
        break;
      case 'send':
        if (a.message.type === 'notification') out.push(`>N${a.message.code}/${a.message.subcode}`);
        else out.push(`>${a.message.type === 'keepalive' ? 'ka' : a.message.type}`);
        break;
      case 'deliver-update':
      case 'deliver-route-refresh':
        out.push(a.type);
        break;
      case 'session-up':
        out.push('up');
        break;
      case 'session-down':
        out.push('down');
        break;
      default:
        break;
    }
  }
  return out.join(' ');
}
