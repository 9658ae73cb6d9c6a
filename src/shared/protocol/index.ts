export * from './common.js';
export * from './runtimeEnv.js';
export * from './jobs.js';
export * from './agents.js';
export * from './nodes.js';
export * from './schedules.js';
export * from './jobapi.js';
export * from './tokens.js';
