export { JobApi, type JobApiDeps } from './service.js';
export { installRuntimeLibs } from './runtimeLibs.js';
export { localAddressFor } from './peer.js';
