// Interface name → index in the calling thread's network namespace (libc if_nametoindex(3) via
// koffi), so attach code run under `ip netns exec` or after setns sees that namespace's devices,
// which /sys/class/net need not reflect.
import koffi from 'koffi';

type NameToIndex = (name: string) => number;
let nameToIndex: NameToIndex | undefined;

/** The ifindex of a device, or 0 if no such device exists in this network namespace. */
export function ifNameToIndex(name: string): number {
  nameToIndex ??= koffi.load('libc.so.6').func('unsigned int if_nametoindex(const char *ifname)') as NameToIndex;
  return nameToIndex(name);
}
