import { describe, expect, it } from 'vitest';
import { commandShape, shellScript } from './procfile-command.ts';

describe('procfile commands', () => {
  it('execs simple commands, after their assignments', () => {
    expect(shellScript('node server.js --port $PORT')).toBe('exec node server.js --port $PORT');
    expect(shellScript('NODE_ENV=production node server.js')).toBe('NODE_ENV=production exec node server.js');
    expect(shellScript('A="x y" B=$HOME/z node s.js')).toBe('A="x y" B=$HOME/z exec node s.js');
  });

  it('keeps the shell for chains, pipes, builtins and keywords', () => {
    for (const c of [
      'cd app && node x.js',
      'node a.js; node b.js',
      'node a.js | tee out',
      'cd app',
      'if true; then node x.js; fi',
      'echo $(date)',
      'NODE_ENV=production',
      'node -e "a;b"',
    ]) {
      expect(commandShape(c), c).toBe('compound');
    }
    expect(shellScript('cd app && node x.js')).toBe("trap 'exit $?' TERM\ncd app && node x.js");
  });
});
