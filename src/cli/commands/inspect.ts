import { EXIT_BAD_INPUT, type Command } from '../command.js';

const command: Command = {
  name: 'inspect',
  summary: 'not built yet',
  help: 'playout inspect: not built yet.',
  async run(_argv, io) {
    io.stderr.write('playout inspect: not built yet\n');
    return EXIT_BAD_INPUT;
  },
};
export default command;
