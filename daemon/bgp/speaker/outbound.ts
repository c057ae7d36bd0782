// Adj-RIB-Out differences into UPDATE messages (RFC 4271 §4.3, §9.2; RFC 4760 MP_REACH/MP_UNREACH
// for non-IPv4 families; RFC 4724 §2 End-of-RIB): many prefixes per message, each message within
// the session's maximum size (4096, or 65535 with RFC 8654). Pure: no sockets.
import { type FamilyKey, type Nlri, type PathAttributes, type SessionContext, type UpdateMessage } from '../types.js';
import type { OutBatch } from '../rib/adj-rib-out.js';
import { encodeMessage, maxMessageSize } from '../wire/index.js';
import { splitFamily } from './options.js';

const IPV4_UNICAST: FamilyKey = '1/1';

/** Octets one prefix takes in an NLRI field (RFC 4271 §4.3, RFC 7911 path id). */
export function nlriSize(prefix: string, addPath: boolean): number {
  const len = Number(prefix.slice(prefix.indexOf('/') + 1));
  return (addPath ? 4 : 0) + 1 + ((len + 7) >> 3);
}

function announceMessage(family: FamilyKey, attrs: PathAttributes, nextHops: readonly string[], nlri: Nlri[]): UpdateMessage {
  if (family === IPV4_UNICAST) return { type: 'update', withdrawn: [], attrs, nlri };
  const { afi, safi } = splitFamily(family);
  return { type: 'update', withdrawn: [], attrs, nlri: [], mpReach: { afi, safi, nextHops: [...nextHops], nlri } };
}

function withdrawMessage(family: FamilyKey, withdrawn: Nlri[]): UpdateMessage {
  if (family === IPV4_UNICAST) return { type: 'update', withdrawn, attrs: null, nlri: [] };
  const { afi, safi } = splitFamily(family);
  return { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi, safi, withdrawn } };
}

/**
 * Split `prefixes` into messages built by `make`, each at most the session's size. The fixed part
 * is measured once by encoding a one-prefix message, so attribute encoding stays the codec's.
 */
function chunk(prefixes: readonly string[], ctx: SessionContext, family: FamilyKey, make: (nlri: Nlri[]) => UpdateMessage): UpdateMessage[] {
  if (prefixes.length === 0) return [];
  const addPath = ctx.addPathSend.has(family);
  const max = maxMessageSize(ctx.extendedMessage);
  const first = prefixes[0]!;
  const fixed = encodeMessage(make([{ prefix: first }]), ctx).length - nlriSize(first, addPath);
  const out: UpdateMessage[] = [];
  let cur: Nlri[] = [];
  let size = fixed;
  for (const prefix of prefixes) {
    const n = nlriSize(prefix, addPath);
    if (cur.length > 0 && size + n > max) {
      out.push(make(cur));
      cur = [];
      size = fixed;
    }
    // Add-path send is not offered by nrd, so path id 0 is never written; kept for completeness.
    cur.push(addPath ? { prefix, pathId: 0 } : { prefix });
    size += n;
  }
  if (cur.length > 0) out.push(make(cur));
  return out;
}

/** Withdrawals first (they free prefixes the announcements may reuse), then announcements. */
export function batchToUpdates(batch: OutBatch, ctx: SessionContext): UpdateMessage[] {
  const out: UpdateMessage[] = [];
  for (const w of batch.withdraw) out.push(...chunk(w.prefixes, ctx, w.family, (nlri) => withdrawMessage(w.family, nlri)));
  for (const a of batch.announce) {
    out.push(...chunk(a.prefixes, ctx, a.family, (nlri) => announceMessage(a.family, a.attrs, a.nextHops, nlri)));
  }
  return out;
}

/** RFC 4724 §2 End-of-RIB: an empty UPDATE for IPv4 unicast, an empty MP_UNREACH otherwise. */
export function endOfRibMessage(family: FamilyKey): UpdateMessage {
  if (family === IPV4_UNICAST) return { type: 'update', withdrawn: [], attrs: null, nlri: [] };
  const { afi, safi } = splitFamily(family);
  return { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi, safi, withdrawn: [] } };
}
