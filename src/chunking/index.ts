export * from './fastcdc.js';
export * from './content-hash.js';
export { GearScanner } from './gear.js';
export { ChunkPool, ChunkFileError, PooledFile, type ChunkPoolOptions } from './pool.js';
