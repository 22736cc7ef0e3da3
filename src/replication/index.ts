// The replication protocol's public API: pure state machines driven by messages and `nowMs`.
//
// How a region node drives them, per shard it follows (src/node/ does this; test/sim/cluster.ts
// does the same over the simulated network):
//   follower = new Follower(config, { hashAt }, rng, { head, headHash, headTick, applied })
//   detector = new DesyncDetector(config)
//   perform(follower.start(now))
//   source entries     → perform(follower.onEntries(entries, region, now))
//   heartbeats/status  → perform(follower.onPeerStatus(s, now)); perform(detector.onPeerStatus(s, now))
//   append durable     → perform(detector.onLogEntries(entries, now)); perform(follower.appended(id, now))
//   machine onTick     → perform(detector.onLocalDigest(d, now))
//   answers/failures   → follower.onRangeResponse/onRangeFailure/bootstrapped/bootstrapFailed,
//                        detector.onLocalState/onBucketsAnswer/onRecordsAnswer/onRequestFailure/resynced/resyncFailed
//   one timer at min(follower.nextWakeMs(), detector.nextWakeMs()) → onTimer(now) on both
// Every call returns the actions to perform, in order; none blocks.
export * from './follower.js';
export * from './desync-detector.js';
export * from './bucket-compare.js';
export * from './state-at-tick.js';
// Failover (issue 6): fencing promises, epoch history, the coordinator, promotion at a tick
// boundary, reconciliation of a returning old leader, and client redirects.
export * from './fence.js';
export * from './epoch-history.js';
export * from './failover-coordinator.js';
export * from './failover-promotion.js';
export * from './failover-quarantine.js';
export * from './failover-redirect.js';
