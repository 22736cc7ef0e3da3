// Prometheus metrics of one node (prom-client), in a registry of its own: several nodes in one
// process (tests, benchmarks) must not share counters.
//
// Gauges that mirror node state (head, applied, lag …) are computed at scrape time from a
// snapshot of the status, so the per-entry path touches counters only.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeStatus } from './http-schemas.js';

export class NodeMetrics {
  readonly registry = new Registry();
  readonly inputs: Counter<'shard' | 'status'>;
  readonly entriesAppended: Counter<'shard' | 'source'>;
  readonly repairs: Counter<'shard' | 'peer' | 'outcome'>;
  readonly repairEntries: Counter<'shard' | 'peer'>;
  readonly digestMismatches: Counter<'shard'>;
  readonly forks: Counter<'shard'>;
  readonly streamReconnects: Counter<'shard' | 'peer'>;
  readonly appendSeconds: Histogram<'shard'>;
  readonly ackSeconds: Histogram<'shard' | 'mode'>;

  constructor(region: string, statusOf: () => NodeStatus) {
    this.registry.setDefaultLabels({ region });
    collectDefaultMetrics({ register: this.registry, prefix: 'playout_process_' });
    const r = [this.registry];
    // One scrape collects every gauge; compute the status once for all of them.
    let cached: NodeStatus | null = null;
    let cachedAtMs = 0;
    const current = (): NodeStatus => {
      const now = Date.now();
      if (cached === null || now - cachedAtMs > 50) {
        cached = statusOf();
        cachedAtMs = now;
      }
      return cached;
    };
    this.inputs = new Counter({ name: 'playout_inputs_total', help: 'Inputs received by the ingress, by outcome (sequenced, duplicate, rejected)', labelNames: ['shard', 'status'], registers: r });
    this.entriesAppended = new Counter({ name: 'playout_entries_appended_total', help: 'Entries appended durably, by source (sequencer, stream, repair)', labelNames: ['shard', 'source'], registers: r });
    this.repairs = new Counter({ name: 'playout_repairs_total', help: 'Range requests sent to peers, by outcome', labelNames: ['shard', 'peer', 'outcome'], registers: r });
    this.repairEntries = new Counter({ name: 'playout_repair_entries_total', help: 'Entries received by range repair', labelNames: ['shard', 'peer'], registers: r });
    this.digestMismatches = new Counter({ name: 'playout_digest_mismatches_total', help: 'Tick digests that differ from the leader\'s (desyncs)', labelNames: ['shard'], registers: r });
    this.forks = new Counter({ name: 'playout_forks_total', help: 'Entries offered with a known seq and a different hash', labelNames: ['shard'], registers: r });
    this.streamReconnects = new Counter({ name: 'playout_stream_reconnects_total', help: 'Replication streams reopened', labelNames: ['shard', 'peer'], registers: r });
    this.appendSeconds = new Histogram({ name: 'playout_append_seconds', help: 'Durable append (group commit) latency', labelNames: ['shard'], buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5], registers: r });
    this.ackSeconds = new Histogram({ name: 'playout_ack_seconds', help: 'Ingress to acknowledgement latency', labelNames: ['shard', 'mode'], buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5], registers: r });

    const shardGauge = (name: string, help: string, pick: (s: NodeStatus['shards'][number]) => number | null): void => {
      new Gauge({
        name,
        help,
        labelNames: ['shard', 'role'],
        registers: r,
        collect() {
          this.reset();
          for (const s of current().shards) {
            const v = pick(s);
            if (v !== null) this.set({ shard: s.shard, role: s.role }, v);
          }
        },
      });
    };
    shardGauge('playout_shard_head', 'Highest seq held durably', (s) => s.head);
    shardGauge('playout_shard_applied', 'Highest seq applied to the reducer', (s) => s.applied);
    shardGauge('playout_shard_tick', 'Open tick', (s) => s.tick);
    shardGauge('playout_shard_epoch', 'Leadership epoch', (s) => s.epoch);
    shardGauge('playout_shard_last_agreed_tick', 'Last tick whose digest equals the leader\'s', (s) => s.lastAgreedTick);
    shardGauge('playout_shard_quarantined', '1 while the shard is quarantined after a desync', (s) => (s.quarantine === null ? 0 : 1));
    shardGauge('playout_shard_stopped', '1 after a fork, reducer or store failure stopped the shard', (s) => (s.stopped === null ? 0 : 1));
    shardGauge('playout_shard_pending_inputs', 'Inputs sequenced but not yet acknowledged', (s) => s.pendingInputs);
    const peerGauge = (name: string, help: string, pick: (p: NodeStatus['shards'][number]['peers'][number]) => number | null): void => {
      new Gauge({
        name,
        help,
        labelNames: ['shard', 'peer'],
        registers: r,
        collect() {
          this.reset();
          for (const s of current().shards) {
            for (const p of s.peers) {
              const v = pick(p);
              if (v !== null) this.set({ shard: s.shard, peer: p.region }, v);
            }
          }
        },
      });
    };
    peerGauge('playout_peer_lag_entries', 'Entries this node is behind the peer\'s known head', (p) => p.lagEntries);
    peerGauge('playout_peer_lag_ms', 'How long this node has been behind the peer\'s known head', (p) => p.lagMs);
    peerGauge('playout_peer_digest_agrees', '1 when the peer\'s latest digest equals ours at that tick, 0 when it differs', (p) => (p.agrees === null ? null : p.agrees ? 1 : 0));
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
