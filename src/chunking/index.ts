export * from './fastcdc.js';
