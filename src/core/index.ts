// The public API of the deterministic core.
export * from './errors.js';
export * from './hash.js';
export * from './codec.js';
export * from './canonical-reader.js';
export * from './read-only-view.js';
export * from './entry.js';
export * from './rng.js';
export * from './state-table.js';
export * from './reducer.js';
export * from './shard-machine.js';
export * from './snapshot.js';
export * from './sequencer.js';
export * from './ingest-window.js';
