import { EXIT_BAD_INPUT, type Command } from '../command.js';

const command: Command = {
  name: 'replay',
  summary: 'not built yet',
  help: 'playout replay: not built yet.',
  async run(_argv, io) {
    io.stderr.write('playout replay: not built yet\n');
    return EXIT_BAD_INPUT;
  },
};
export default command;
