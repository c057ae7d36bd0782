// Public surface of the RIB (RFC 4271 §3.2/§9 Adj-RIB-In, Loc-RIB, Adj-RIB-Out) for main.ts,
// the session shell and the routing layer.
export { Rib, type RibOptions, type UpdateResult, type PeerDownOptions, type PeerUpOptions, type FamilyCounts } from './rib.js';
export { RecordingSink, type RouteChange, type RouteSubscriber } from './changes.js';
export type { OutAnnounce, OutWithdraw, OutBatch } from './adj-rib-out.js';
export type { Selection, DecisionOptions } from './decision.js';
export { Path } from './path.js';
export { LOCAL_ID, type PeerInfo, type PathSource, type LocalSource } from './peer.js';
