export { canonicalText, rowEncoding, rowHash, keyHash, jsonbText, trimScale, ContentHasher, type HashColumn } from './hash.js'
