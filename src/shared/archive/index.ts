/**
 * Packages as archives: `.tar.gz` from raysub's packer, `.zip` from Ray's clients, wheels. One
 * module checks them (the head, at upload) and unpacks them (the agents), with the same caps and
 * the same model of the tree, so that what the head accepted is what an agent writes.
 */
export { DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_BYTES, type ArchiveCaps } from './caps.js';
export { extractArchive, type ExtractResult } from './extract.js';
export { inspectArchive, type InspectOptions, type Inspection } from './inspect.js';
export { archiveKind, readArchive, type ArchiveKind } from './read.js';
export type { EntrySink, EntryVisitor } from './tarStream.js';
export { entryParts, PackageTree, type ArchiveEntry, type EntryType } from './tree.js';
export { makeTreeReadOnly, removeTreeSync, walkTree } from './treeFs.js';
