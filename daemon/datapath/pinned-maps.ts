// A set of maps opened by their pins under <pinPath>/maps (bpf_obj_get), all or none: the writers
// of the worker (services, policy) hold their fds between changes and close them together.
import { join } from 'node:path';
import { closeFd, objGet } from './libbpf.js';

export class PinnedMaps<Name extends string> {
  private fds: Map<Name, number> | undefined;

  constructor(
    private readonly pinPath: string,
    private readonly names: readonly Name[],
  ) {}

  /** The fd of a map, opening every map of the set on first use; a failure leaves none open. */
  fd(name: Name): number {
    if (!this.fds) {
      const fds = new Map<Name, number>();
      try {
        for (const m of this.names) fds.set(m, objGet(join(this.pinPath, 'maps', m)));
      } catch (e) {
        for (const fd of fds.values()) closeFd(fd);
        throw e;
      }
      this.fds = fds;
    }
    const fd = this.fds.get(name);
    if (fd === undefined) throw new Error(`map ${name} is not in this set`);
    return fd;
  }

  close(): void {
    for (const fd of this.fds?.values() ?? []) closeFd(fd);
    this.fds = undefined;
  }
}
