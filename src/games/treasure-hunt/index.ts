// The treasure-hunt example game: reducer versions, schemas, load generator and log generator.
export * from './schemas.js';
export * from './treasure-hunt.js';
export * from './world-view.js';
export * from './load.js';
export * from './generate-log.js';
export { ANY, BURIED, SURFACE, cellKey, dist2, itemsWithin, nearestItem, type ItemFilter } from './geo.js';
