export * from './fastcdc.js';
export * from './content-hash.js';
export { GearScanner } from './gear.js';
export { ChunkPool, ChunkFileError, PooledFile, type ChunkPoolOptions, type SmallBatchResult } from './pool.js';
export type { SmallFileJob, SmallFileResult } from './worker.js';
