export { InjobService, type InjobServiceDeps } from './service.js';
export { installRuntimeLibs } from './runtimeLibs.js';
export { localAddressFor } from './peer.js';
