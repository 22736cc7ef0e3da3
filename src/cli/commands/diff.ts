import { EXIT_BAD_INPUT, type Command } from '../command.js';

const command: Command = {
  name: 'diff',
  summary: 'not built yet',
  help: 'playout diff: not built yet.',
  async run(_argv, io) {
    io.stderr.write('playout diff: not built yet\n');
    return EXIT_BAD_INPUT;
  },
};
export default command;
