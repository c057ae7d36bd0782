// bpffs mount helpers of the lab: they live in test/lib/bpffs.ts, shared with the daemon tests and
// the fabric; this name stays for the lab's own modules.
export * from '../lib/bpffs.js';
