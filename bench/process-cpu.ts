// CPU time of a process (user + system, ms) from /proc/<pid>/stat, for benchmarks that print
// CPU per entry: on a shared machine wall times swing with the neighbours' load, CPU per entry
// much less. Null where /proc is not available.
import { readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ on Linux

export function processCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces), 1-based: utime is 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S;
  } catch {
    return null;
  }
}

/** Load average over 1 minute, for the record next to wall-time figures. */
export function loadAverage1m(): number | null {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

/** The machine's CPU counters (jiffies, all CPUs) from /proc/stat: busy, steal, total. */
export interface MachineCpu {
  busy: number;
  steal: number;
  total: number;
}

export function machineCpu(): MachineCpu | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user).
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
    const busy = user! + nice! + system! + irq! + softirq!;
    return { busy, steal: steal!, total: busy + idle! + iowait! + steal! };
  } catch {
    return null;
  }
}

/**
 * Time a process's main thread spent runnable but waiting for a CPU (ms), from
 * /proc/<pid>/task/<pid>/schedstat (run time, run-queue wait, timeslices, in ns). Null where
 * schedstats are not available.
 */
export function runQueueWaitMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const f = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    return Number(f[1]) / 1e6;
  } catch {
    return null;
  }
}
