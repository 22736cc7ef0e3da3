// FaultProxy: a small TCP proxy in front of one peer link, for `playout demo --chaos`.
//
// Modes:
//   up        bytes flow both ways;
//   reset     open connections are destroyed and new ones are accepted and destroyed at once
//             (the peer sees ECONNRESET: a link that drops);
//   blackhole connections are accepted and held, but no byte flows either way (a link that
//             hangs without a reset: only timeouts notice it).
// Tests use Toxiproxy (a real fault injector with latency, bandwidth and jitter); this proxy
// exists so the demo needs nothing but Node.
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type FaultMode = 'up' | 'reset' | 'blackhole';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class FaultProxy {
  readonly name: string;
  readonly targetHost: string;
  readonly targetPort: number;
  mode: FaultMode = 'up';
  /** Connections accepted, and cut by a mode change. */
  connections = 0;
  cuts = 0;
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private readonly held = new Set<Socket>();

  private constructor(name: string, targetHost: string, targetPort: number) {
    this.name = name;
    this.targetHost = targetHost;
    this.targetPort = targetPort;
    this.server = createServer((client) => this.accept(client));
  }

  static async start(name: string, targetHost: string, targetPort: number, listenPort = 0, listenHost = '127.0.0.1'): Promise<FaultProxy> {
    const p = new FaultProxy(name, targetHost, targetPort);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(listenPort, listenHost, () => resolve());
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private accept(client: Socket): void {
    this.connections++;
    client.setNoDelay(true);
    if (this.mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    if (this.mode === 'blackhole') {
      this.hold(client);
      return;
    }
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  }

  private hold(client: Socket): void {
    this.held.add(client);
    client.pause();
    client.on('error', () => this.held.delete(client));
    client.on('close', () => this.held.delete(client));
  }

  /** Change the link's state; cutting it (reset or blackhole) affects open connections too. */
  set(mode: FaultMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    if (mode === 'up') {
      // Held connections never carried a byte: reset them so their owners reconnect at once.
      for (const s of this.held) s.resetAndDestroy();
      this.held.clear();
      return;
    }
    this.cuts++;
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      if (mode === 'reset') {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      } else {
        // Stop forwarding in both directions but keep the client's socket open: it hangs.
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.upstream.destroy();
        this.hold(pair.client);
      }
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    for (const s of this.held) s.destroy();
    this.held.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
