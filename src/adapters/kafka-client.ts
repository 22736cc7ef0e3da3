// Shared kafkajs plumbing for the Kafka adapters: validated client options, one place that
// builds a `Kafka` instance, and the mapping of kafkajs failures to PlayoutErrors.
import { Kafka, logLevel, type LogEntry, type logCreator } from 'kafkajs';
import { z } from 'zod';
import { PlayoutError, describe } from '../core/index.js';

// host:port; the host may be a name, an IPv4 address or a bracketed IPv6 address.
const BROKER = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;

export const KafkaClientOptionsSchema = z.strictObject({
  /** Bootstrap brokers, `host:port`. */
  brokers: z
    .array(z.string().regex(BROKER, 'host:port'))
    .min(1, 'at least one broker')
    .refine((bs) => bs.every((b) => Number(BROKER.exec(b)?.[2]) <= 65535), 'ports must be <= 65535'),
  clientId: z.string().min(1).max(128).default('playout'),
  connectionTimeoutMs: z.number().int().positive().default(3_000),
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /** kafkajs retries of a failed request before it reports the failure. */
  retriesMax: z.number().int().min(0).max(100).default(5),
  retryDelayMsInitial: z.number().int().positive().default(300),
  logLevel: z.enum(['nothing', 'error', 'warn', 'info', 'debug']).default('error'),
});
export type KafkaClientOptions = z.input<typeof KafkaClientOptionsSchema>;
export type KafkaClientConfig = z.output<typeof KafkaClientOptionsSchema>;

const LEVELS = { nothing: logLevel.NOTHING, error: logLevel.ERROR, warn: logLevel.WARN, info: logLevel.INFO, debug: logLevel.DEBUG } as const;

/** Parse adapter options with zod; a bad option is a PLAYOUT_INVALID_ARGUMENT naming its path. */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.map(String).join('.');
  let received: unknown = value;
  for (const k of issue.path) received = (received as Record<PropertyKey, unknown> | null | undefined)?.[k as PropertyKey];
  throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `${what}: option ${path || '(root)'}: ${issue.message}, received ${describe(received)}`, {
    path: path || null,
    expected: issue.message,
    received: describe(received),
  });
}

// kafkajs logs JSON lines to the console by default; one line per entry, prefixed, keeps them
// readable next to the node's own logs and greppable by namespace.
const consoleLogCreator: logCreator = () => (entry: LogEntry) => {
  const { message, ...extra } = entry.log;
  const level = entry.level === logLevel.ERROR ? 'error' : entry.level === logLevel.WARN ? 'warn' : 'info';
  const line = `kafkajs ${entry.namespace ? `[${entry.namespace}] ` : ''}${message} ${JSON.stringify(extra)}`;
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
};

export function createKafka(options: KafkaClientOptions | KafkaClientConfig, what = 'Kafka client'): { kafka: Kafka; config: KafkaClientConfig } {
  const config = parseOptions(KafkaClientOptionsSchema, options, what);
  const kafka = new Kafka({
    brokers: config.brokers,
    clientId: config.clientId,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    retry: { retries: config.retriesMax, initialRetryTime: config.retryDelayMsInitial },
    logLevel: LEVELS[config.logLevel],
    logCreator: consoleLogCreator,
  });
  return { kafka, config };
}

/**
 * Turn a kafkajs failure into a PlayoutError. Unreachable brokers, timeouts, missing leaders
 * and the like are PLAYOUT_KAFKA_UNAVAILABLE (retriable); a PlayoutError passes through.
 */
export function kafkaError(err: unknown, action: string, brokers: readonly string[]): PlayoutError {
  if (err instanceof PlayoutError) return err;
  const e = err as { name?: string; message?: string; retriable?: boolean; type?: string } | null;
  const reason = e?.message ?? String(err);
  const received = `${e?.name ?? 'error'}${e?.type ? ` ${e.type}` : ''}: ${reason}`;
  // A broker's protocol answer that no retry can change (kafkajs marks it non-retriable and
  // names its type): a record too large, an invalid config, not authorized …
  if (e?.name === 'KafkaJSProtocolError' && e.retriable === false && e.type !== undefined && !RETRIABLE_TYPES.has(e.type)) {
    return new PlayoutError('PLAYOUT_KAFKA_REFUSED', `Cannot ${action} on Kafka at ${brokers.join(',')}: the broker refused it (${e.type}): ${reason}`, {
      expected: 'a request the broker accepts',
      received,
      cause: err,
    });
  }
  return new PlayoutError('PLAYOUT_KAFKA_UNAVAILABLE', `Cannot ${action} on Kafka at ${brokers.join(',')}: ${reason}`, {
    expected: 'a reachable broker that acknowledges',
    received,
    cause: err,
  });
}

// Protocol errors kafkajs reports as non-retriable after it gave up, but that describe a
// state of the cluster rather than of the request: trying later can work.
const RETRIABLE_TYPES: ReadonlySet<string> = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'REQUEST_TIMED_OUT',
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'REBALANCE_IN_PROGRESS',
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'CONCURRENT_TRANSACTIONS',
  'UNKNOWN_SERVER_ERROR',
  'NETWORK_EXCEPTION',
]);

/** True for the kafkajs error of a missing topic or partition. */
export function isUnknownTopicError(err: unknown): boolean {
  const e = err as { type?: string; message?: string; name?: string } | null;
  return e?.type === 'UNKNOWN_TOPIC_OR_PARTITION' || /does not host this topic-partition|topic.*not.*exist/i.test(e?.message ?? '');
}
