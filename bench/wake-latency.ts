// How late this machine wakes a blocked thread: a worker blocked in Atomics.wait, woken by the
// main thread about every millisecond, notes how long after the notify it ran. On an idle
// machine this is the floor under every hand-over in a pipeline (an lmdb write thread picking up
// a commit, a node reading a socket another process wrote to): the latency benchmarks print it
// next to their percentiles, measured in the same run, so a tail set by the machine shows as such.
import { Worker } from 'node:worker_threads';

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const flag = new Int32Array(workerData.flag);
const sentAt = new Float64Array(workerData.sentAt);
const lateMs = [];
for (;;) {
  Atomics.wait(flag, 0, 0);
  const at = performance.timeOrigin + performance.now();
  if (Atomics.load(flag, 0) === 2) break;
  lateMs.push(at - sentAt[0]);
  Atomics.store(flag, 0, 0);
}
parentPort.postMessage(lateMs);
`;

/** Wake-up latencies (ms, sorted) of `samples` wake-ups about 1 ms apart. */
export async function threadWakeLatencies(samples: number): Promise<number[]> {
  const flag = new Int32Array(new SharedArrayBuffer(8));
  const sentAt = new Float64Array(new SharedArrayBuffer(8));
  const worker = new Worker(WORKER, { eval: true, workerData: { flag: flag.buffer, sentAt: sentAt.buffer } });
  const result = new Promise<number[]>((resolve, reject) => {
    worker.once('message', (m: number[]) => resolve(m));
    worker.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < samples; i++) {
    await new Promise((r) => setTimeout(r, 1));
    // The worker resets the flag once it has run: never notify before (a lost wake-up).
    if (Atomics.load(flag, 0) !== 0) {
      i--;
      continue;
    }
    sentAt[0] = performance.timeOrigin + performance.now();
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }
  while (Atomics.load(flag, 0) !== 0) await new Promise((r) => setTimeout(r, 1));
  Atomics.store(flag, 0, 2);
  Atomics.notify(flag, 0);
  const late = await result;
  await worker.terminate();
  return late.sort((a, b) => a - b);
}
