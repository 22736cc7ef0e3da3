// tools/kafka/kafka.sh refuses bad invocations with a message and an exit code, before it
// starts any JVM (the happy paths run in every *.int.test.ts through test/helpers/kafka.ts).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KAFKA_SH } from '../helpers/kafka.js';

function sh(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [KAFKA_SH, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('tools/kafka/kafka.sh', () => {
  let dir: string;
  let busy: Server;
  let busyPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'playout-kafka-sh-'));
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    busyPort = (busy.address() as { port: number }).port;
  });

  afterAll(() => {
    busy.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    [[], 'usage: kafka.sh start|stop|status'],
    [['start'], '--dir is required'],
    [['start', '--dir', 'D', '--port', 'x', '--controller-port', '9093'], '--port must be a TCP port'],
    [['start', '--dir', 'D', '--port', '9092', '--controller-port', '70000'], '--controller-port must be a TCP port'],
    [['start', '--dir', 'D', '--port', '9092', '--controller-port', '9092'], 'must differ'],
    [['start', '--dir', 'D', '--port', '9092', '--controller-port', '9093', '--partitions', '0'], '--partitions must be a positive integer'],
    [['start', '--dir', 'D', '--colour', 'blue'], "unknown option '--colour'"],
    [['restart', '--dir', 'D'], "unknown command 'restart'"],
    [['mm2-start', '--dir', 'D', '--config', '/no/such/file'], '--config must name an existing'],
  ])('refuses %j with exit 2', async (args, message) => {
    const r = await sh(args.map((a) => (a === 'D' ? dir : a)));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('says how to install the jars when they are missing (exit 4)', async () => {
    const r = await sh(['start', '--dir', dir, '--port', '9092', '--controller-port', '9093'], { ...process.env, KAFKA_LIBS: join(dir, 'no-jars') });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('bash tools/kafka/install.sh');
  });

  it('refuses a port already in use before starting anything', async () => {
    const r = await sh(['start', '--dir', dir, '--port', String(busyPort), '--controller-port', String(busyPort + 1)]);
    // Without jars the check for them comes first; with them, the port check answers.
    if (r.code === 4) expect(r.stderr).toContain('install.sh');
    else {
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`port ${busyPort} is already in use`);
    }
  });

  it('reports a directory with nothing running as stopped (exit 3), and stop is a no-op there', async () => {
    const status = await sh(['status', '--dir', dir]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain('kafka: stopped');
    const stop = await sh(['stop', '--dir', dir]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain('not running');
  });
});
