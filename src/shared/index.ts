export * from './errors.js';
export * from './config.js';
export * from './ids.js';
export * from './log.js';
export * from './resources.js';
export * as protocol from './protocol/index.js';
