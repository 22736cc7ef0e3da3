#!/usr/bin/env node
// playout: the command-line entry point. A command table; see src/cli/commands/index.ts.
import { COMMANDS } from './commands/index.js';
import { EXIT_BAD_INPUT, type CommandIo } from './command.js';
import { PlayoutError } from '../core/errors.js';

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const width = Math.max(...COMMANDS.map((c) => c.name.length));
    io.stdout.write(
      'playout — geo-replicated deterministic event-log replay\n\nUsage: playout <command> [options]\n\nCommands:\n' +
        COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n') +
        '\n\nRun `playout <command> --help` for a command\'s options and an example.\n',
    );
    return name === undefined ? EXIT_BAD_INPUT : 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write('playout 0.1.0\n');
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.stderr.write(`playout: unknown command "${name}"; expected one of ${COMMANDS.map((c) => c.name).join(', ')}\n`);
    return EXIT_BAD_INPUT;
  }
  const command = (await entry.load()).default;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(command.help.endsWith('\n') ? command.help : command.help + '\n');
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    // Operating errors get one line with their code; anything else is a bug and keeps its stack.
    if (err instanceof PlayoutError) {
      io.stderr.write(`playout ${name}: ${err.code}: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === new URL(`file://${(await import('node:fs')).realpathSync(process.argv[1])}`).href;
if (isEntryPoint) {
  const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });
  process.exitCode = code;
}
