// The CLI's command table contract. Each command is a thin shell over a testable operator
// function: parse and validate argv with zod, call the operator, print, return an exit code.
//
// Exit codes, for every command: 0 success (for verify/bisect: the sources agree),
// 1 a finding (desync found, sources differ), 2 bad input (a one-line reason on stderr).
export interface CommandIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface Command {
  name: string;
  /** One line, shown in `playout --help`. */
  summary: string;
  /** Full help with at least one example, shown by `playout NAME --help`. */
  help: string;
  run(argv: string[], io: CommandIo): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FINDING = 1;
export const EXIT_BAD_INPUT = 2;
