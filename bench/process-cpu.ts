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
