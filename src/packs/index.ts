export * from './writer.js';
export * from './reader.js';
export * from './temp.js';
