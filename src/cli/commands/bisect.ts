import { EXIT_BAD_INPUT, type Command } from '../command.js';

const command: Command = {
  name: 'bisect',
  summary: 'not built yet',
  help: 'playout bisect: not built yet.',
  async run(_argv, io) {
    io.stderr.write('playout bisect: not built yet\n');
    return EXIT_BAD_INPUT;
  },
};
export default command;
