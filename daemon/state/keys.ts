// The etcd key layout of nrd's cluster state (versioned under a prefix, default /nrd/v1).
//
//   <p>/nodes/<name>                 node record (no lease: ownership)
//   <p>/alive/<name>                 liveness, on a short lease
//   <p>/cidrs/<pool>/<cidr>          owner of a pod CIDR ('/' in the CIDR written as '_')
//   <p>/endpoints/<node>/<id>        endpoint record
//   <p>/ips/<node>/<ip>              endpoint address reservation: names the endpoint holding it
//                                    (under the node, so reclaiming a node frees its addresses in
//                                    the same transaction that frees its CIDR)
//   <p>/identities/<id>              label set + per-node reference counts
//   <p>/identity-index/<hash>        label-set hash → identity id (makes allocation race-free)
//   <p>/services/<name>              service record
//   <p>/policies/<name>              policy record

export class Keys {
  readonly root: string;
  constructor(prefix = '/nrd/v1') {
    this.root = prefix.replace(/\/+$/, '');
  }
  get nodes(): string {
    return `${this.root}/nodes/`;
  }
  node(name: string): string {
    return `${this.nodes}${name}`;
  }
  get alive(): string {
    return `${this.root}/alive/`;
  }
  aliveKey(name: string): string {
    return `${this.alive}${name}`;
  }
  get cidrs(): string {
    return `${this.root}/cidrs/`;
  }
  cidrPool(pool: string): string {
    return `${this.cidrs}${pool}/`;
  }
  cidr(pool: string, cidr: string): string {
    return `${this.cidrPool(pool)}${cidr.replace('/', '_')}`;
  }
  /** "<pool>/<cidr>" back out of a cidr key. */
  parseCidrKey(key: string): { pool: string; cidr: string } | null {
    if (!key.startsWith(this.cidrs)) return null;
    const rest = key.slice(this.cidrs.length);
    const i = rest.indexOf('/');
    if (i < 0) return null;
    return { pool: rest.slice(0, i), cidr: rest.slice(i + 1).replace('_', '/') };
  }
  get endpoints(): string {
    return `${this.root}/endpoints/`;
  }
  nodeEndpoints(node: string): string {
    return `${this.endpoints}${node}/`;
  }
  endpoint(node: string, id: string): string {
    return `${this.nodeEndpoints(node)}${id}`;
  }
  get ips(): string {
    return `${this.root}/ips/`;
  }
  nodeIps(node: string): string {
    return `${this.ips}${node}/`;
  }
  ip(node: string, ip: string): string {
    return `${this.nodeIps(node)}${ip}`;
  }
  get identities(): string {
    return `${this.root}/identities/`;
  }
  identity(id: number): string {
    return `${this.identities}${id}`;
  }
  get identityIndex(): string {
    return `${this.root}/identity-index/`;
  }
  identityIndexKey(hash: string): string {
    return `${this.identityIndex}${hash}`;
  }
  get services(): string {
    return `${this.root}/services/`;
  }
  service(name: string): string {
    return `${this.services}${name}`;
  }
  get policies(): string {
    return `${this.root}/policies/`;
  }
  policy(name: string): string {
    return `${this.policies}${name}`;
  }
}

/** Last path element of a key. */
export function leaf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
