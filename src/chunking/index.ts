export * from './fastcdc.js';
export { ChunkPool, ChunkFileError, PooledFile, type ChunkPoolOptions } from './pool.js';
