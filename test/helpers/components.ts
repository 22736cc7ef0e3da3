// Real components (Kafka, Toxiproxy, kcat, Chromium …) are started by the tests themselves.
// When one cannot be had, its tests are skipped with a message that says what is missing —
// except under CI=true, where a missing component fails the run.
import { execFileSync } from 'node:child_process';

export interface Component {
  readonly name: string;
  /** null when present; otherwise what is missing and how to get it. */
  readonly missing: string | null;
  /** describe.skipIf(component.skip): skip only when missing and not in CI. */
  readonly skip: boolean;
  /** Call in beforeAll: throws under CI=true when the component is missing. */
  require(): void;
}

export const IN_CI = process.env.CI === 'true';

export function component(name: string, missing: string | null): Component {
  if (missing !== null && !IN_CI) {
    // Visible in the test output: a skip is never silent.
    console.warn(`SKIPPED ${name} tests: ${missing}`);
  }
  return {
    name,
    missing,
    skip: missing !== null && !IN_CI,
    require() {
      if (missing !== null) throw new Error(`${name} is required under CI=true but is missing: ${missing}`);
    },
  };
}

/** The path of an executable on PATH (or in extra dirs), or null. */
export function which(bin: string, extraDirs: string[] = []): string | null {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(':')];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = `${dir}/${bin}`;
    try {
      execFileSync('test', ['-x', p]);
      return p;
    } catch {
      // not here; next dir
    }
  }
  return null;
}
