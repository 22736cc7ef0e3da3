// The command table. Each command module is loaded only when it runs, so `playout inspect`
// does not pay for fastify or kafkajs.
import type { Command } from '../command.js';

export const COMMANDS: ReadonlyArray<{ name: string; summary: string; load: () => Promise<{ default: Command }> }> = [
  { name: 'start', summary: 'run one region node from a region config file', load: () => import('./start.js') },
  { name: 'demo', summary: 'three regions on this machine with simulated treasure hunters', load: () => import('./demo.js') },
  { name: 'replay', summary: 'replay a shard from a fixture, a store, a region or Kafka and print digests', load: () => import('./replay.js') },
  { name: 'verify', summary: 'replay and compare with the digests recorded in the log; localise a desync', load: () => import('./verify.js') },
  { name: 'bisect', summary: 'first diverging tick, entry and record between two sources', load: () => import('./bisect.js') },
  { name: 'diff', summary: 'field-level state diff of two sources at a tick', load: () => import('./diff.js') },
  { name: 'inspect', summary: 'entries, ticks, epochs, sizes, gaps and chain status of a source', load: () => import('./inspect.js') },
  { name: 'capture', summary: 'save a live range of a shard (plus the snapshot before it) as a fixture', load: () => import('./capture.js') },
  { name: 'failover', summary: 'plan, execute or show the status of a leadership change', load: () => import('./failover.js') },
];
