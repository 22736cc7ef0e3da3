// KafkaLogPublisher.close() during a broker outage: the connect in flight cannot be cancelled
// (kafkajs retries on its own timers), so close() must not wait for it. The "broker" here is a
// TCP server that accepts connections and never answers (a hung broker, as a Toxiproxy
// `timeout` toxic makes one), or a port nobody listens on (a stopped broker); kafkajs would keep
// retrying for minutes with these options, longer than the test's timeout.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaLogPublisher } from '../../src/adapters/kafka-log-publisher.js';
import { freePort } from '../helpers/kafka.js';
import { makeLog } from './fixtures/counter-log.js';

describe('KafkaLogPublisher.close during a broker outage', () => {
  let server: Server;
  let port = 0;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('a hung broker: close() returns with the connect still in flight, and fails what was queued', async () => {
    const p = new KafkaLogPublisher({ client: { brokers: [`127.0.0.1:${port}`], requestTimeoutMs: 600_000, connectionTimeoutMs: 600_000, retriesMax: 100, logLevel: 'nothing' } });
    const pending = p.publish(makeLog('hung-1', 1, 3).entries).catch((e: unknown) => e);
    // The client connected and sent its first request, which will never be answered.
    while (sockets.size === 0) await new Promise((r) => setTimeout(r, 10));
    let settled = false;
    void pending.then(() => (settled = true));
    expect(settled).toBe(false);
    await p.close();
    expect(await pending).toMatchObject({ code: 'PLAYOUT_KAFKA_UNAVAILABLE', retriable: true });
    expect(String((await pending as Error).message)).toContain('closed');
    expect(p.lastPublished('hung-1')).toBeNull();
    // Closed means closed: no new connect, no new publish.
    await expect(p.publish(makeLog('hung-1', 1, 1).entries)).rejects.toMatchObject({ code: 'PLAYOUT_KAFKA_UNAVAILABLE' });
    await expect(p.connect()).rejects.toMatchObject({ code: 'PLAYOUT_KAFKA_UNAVAILABLE' });
    await p.close(); // twice is fine
  }, 15_000);

  it('a stopped broker: close() returns between connect retries', async () => {
    const stopped = await freePort();
    const p = new KafkaLogPublisher({ client: { brokers: [`127.0.0.1:${stopped}`], retriesMax: 100, retryDelayMsInitial: 1_000, logLevel: 'nothing' } });
    const connecting = p.connect().catch((e: unknown) => e);
    const pending = p.publish(makeLog('down-1', 2, 2).entries).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    await p.close();
    expect(await pending).toMatchObject({ code: 'PLAYOUT_KAFKA_UNAVAILABLE' });
    void connecting; // settles when kafkajs gives up; nothing waits for it
  }, 15_000);
});
