import { EXIT_BAD_INPUT, type Command } from '../command.js';

const command: Command = {
  name: 'demo',
  summary: 'not built yet',
  help: 'playout demo: not built yet.',
  async run(_argv, io) {
    io.stderr.write('playout demo: not built yet\n');
    return EXIT_BAD_INPUT;
  },
};
export default command;
