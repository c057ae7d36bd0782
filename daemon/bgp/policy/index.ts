// Public surface of import/export policy (prefix ranges, loop checks, RFC 4486 max-prefix,
// RFC 4271 §5.1 export rules): built from plain option objects by the config layer.
export { ImportPolicy, checkMaxPrefix, maxPrefixNotificationData, type LocalIdentity, type MaxPrefixDecision } from './import.js';
export { ExportPolicy, prependAs, type OutRoute, type OriginatedRoute } from './export.js';
export type * from './options.js';
