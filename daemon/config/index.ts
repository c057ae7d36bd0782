// Site configuration: schema, loading and validation, diffing, check-config, reference docs.
export { EX_CONFIG } from './types.js';
export type {
  NrdConfig,
  BgpPeerConfig,
  ConfigIssue,
  LoadResult,
  ConfigChange,
  RoutingMode,
  AttachMode,
  LogLevel,
  AddressFamily,
  MaxPrefixAction,
} from './types.js';
export { loadConfigFile, loadConfigText, loadConfigObject, type LoadOptions } from './load.js';
export { diffConfig } from './diff.js';
export { checkConfigCommand, formatIssue, type CommandOutput } from './check.js';
export { renderConfigDoc } from './doc.js';
export { CONFIG_SCHEMA, PEER_SCHEMA, CONFIG_LEAVES, envName } from './schema.js';
export { parseCommunity, parseLargeCommunity, WELL_KNOWN_COMMUNITIES } from './net.js';
