// The replication protocol's public API: pure state machines driven by messages and `nowMs`.
export * from './follower.js';
export * from './desync-detector.js';
export * from './bucket-compare.js';
export * from './state-at-tick.js';
