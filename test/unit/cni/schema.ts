// Shape checks of what a CNI plugin prints, from the CNI specification 1.0.0 ("Result", "Error",
// "Version" sections): each returns the list of violations, [] when the document conforms. Used by
// the unit and the integration conformance tests on every stdout the plugin produces.
import { isIP } from 'node:net';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An address with a prefix length valid for its family. */
export function isCidr(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const fam = isIP(m[1]!);
  const len = Number(m[2]);
  return (fam === 4 && len <= 32) || (fam === 6 && len <= 128);
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const VERSION_RE = /^\d+\.\d+\.\d+$/;

function onlyKeys(where: string, o: Obj, allowed: readonly string[], out: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) out.push(`${where}: key "${k}" is not in the spec`);
}

function stringList(where: string, v: unknown, out: string[]): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) out.push(`${where}: expected a list of strings`);
}

/** A 1.0.0 success result of ADD. */
export function resultIssues(doc: unknown): string[] {
  const out: string[] = [];
  if (!isObj(doc)) return ['result: not an object'];
  onlyKeys('result', doc, ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'], out);
  if (typeof doc.cniVersion !== 'string' || !VERSION_RE.test(doc.cniVersion)) out.push('cniVersion: required, a semantic version');
  const ifaces = doc.interfaces ?? [];
  if (!Array.isArray(ifaces)) out.push('interfaces: expected a list');
  else
    ifaces.forEach((i: unknown, n) => {
      const w = `interfaces[${n}]`;
      if (!isObj(i)) return void out.push(`${w}: not an object`);
      onlyKeys(w, i, ['name', 'mac', 'sandbox'], out);
      if (typeof i.name !== 'string' || i.name === '') out.push(`${w}.name: required`);
      if (i.mac !== undefined && (typeof i.mac !== 'string' || !MAC_RE.test(i.mac))) out.push(`${w}.mac: not a MAC`);
      if (i.sandbox !== undefined && (typeof i.sandbox !== 'string' || i.sandbox === '')) out.push(`${w}.sandbox: expected a non-empty string`);
    });
  const nIf = Array.isArray(ifaces) ? ifaces.length : 0;
  const ips = doc.ips ?? [];
  if (!Array.isArray(ips)) out.push('ips: expected a list');
  else
    ips.forEach((i: unknown, n) => {
      const w = `ips[${n}]`;
      if (!isObj(i)) return void out.push(`${w}: not an object`);
      onlyKeys(w, i, ['address', 'gateway', 'interface'], out);
      if (!isCidr(i.address)) out.push(`${w}.address: not an address in CIDR notation`);
      if (i.gateway !== undefined && (typeof i.gateway !== 'string' || isIP(i.gateway) === 0)) out.push(`${w}.gateway: not an IP address`);
      if (i.gateway !== undefined && typeof i.address === 'string' && typeof i.gateway === 'string' && isIP(i.gateway) !== isIP(i.address.split('/')[0]!)) out.push(`${w}.gateway: not of the address's family`);
      if (i.interface !== undefined && (!Number.isInteger(i.interface) || (i.interface as number) < 0 || (i.interface as number) >= nIf)) out.push(`${w}.interface: not an index into interfaces`);
    });
  const routes = doc.routes ?? [];
  if (!Array.isArray(routes)) out.push('routes: expected a list');
  else
    routes.forEach((r: unknown, n) => {
      const w = `routes[${n}]`;
      if (!isObj(r)) return void out.push(`${w}: not an object`);
      onlyKeys(w, r, ['dst', 'gw'], out);
      if (!isCidr(r.dst)) out.push(`${w}.dst: not a prefix`);
      if (r.gw !== undefined && (typeof r.gw !== 'string' || isIP(r.gw) === 0)) out.push(`${w}.gw: not an IP address`);
    });
  if (doc.dns !== undefined) {
    if (!isObj(doc.dns)) out.push('dns: expected an object');
    else {
      onlyKeys('dns', doc.dns, ['nameservers', 'domain', 'search', 'options'], out);
      stringList('dns.nameservers', doc.dns.nameservers, out);
      stringList('dns.search', doc.dns.search, out);
      stringList('dns.options', doc.dns.options, out);
      if (doc.dns.domain !== undefined && typeof doc.dns.domain !== 'string') out.push('dns.domain: expected a string');
    }
  }
  return out;
}

/** The error object: cniVersion, a code (well-known 1-7, 11, 50-51 or the plugin's 100+), msg. */
export function errorIssues(doc: unknown): string[] {
  const out: string[] = [];
  if (!isObj(doc)) return ['error: not an object'];
  onlyKeys('error', doc, ['cniVersion', 'code', 'msg', 'details'], out);
  if (typeof doc.cniVersion !== 'string') out.push('cniVersion: required');
  const c = doc.code;
  if (!Number.isInteger(c) || !([1, 2, 3, 4, 5, 6, 7, 11, 50, 51].includes(c as number) || (c as number) >= 100)) out.push(`code: ${String(c)} is neither well-known nor 100+`);
  if (typeof doc.msg !== 'string' || doc.msg === '') out.push('msg: required');
  if (doc.details !== undefined && typeof doc.details !== 'string') out.push('details: expected a string');
  return out;
}

/** The VERSION answer. */
export function versionIssues(doc: unknown): string[] {
  const out: string[] = [];
  if (!isObj(doc)) return ['version: not an object'];
  onlyKeys('version', doc, ['cniVersion', 'supportedVersions'], out);
  if (typeof doc.cniVersion !== 'string' || !VERSION_RE.test(doc.cniVersion)) out.push('cniVersion: required');
  if (!Array.isArray(doc.supportedVersions) || doc.supportedVersions.length === 0 || doc.supportedVersions.some((v) => typeof v !== 'string' || !VERSION_RE.test(v))) out.push('supportedVersions: expected a non-empty list of versions');
  return out;
}
