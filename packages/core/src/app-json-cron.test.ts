import { describe, expect, it } from 'vitest';
import { parseAppJson } from './app-json.ts';

describe('app.json cron', () => {
  it('keeps Dokku cron entries', () => {
    const a = parseAppJson(
      JSON.stringify({
        cron: [
          { command: 'node report.js', schedule: '*/5 * * * *' },
          { command: 'echo tick', schedule: '*/2 * * * * *' },
          { command: 'node daily.js', schedule: '@daily' },
        ],
      }),
    );
    expect(a.cron).toEqual([
      { command: 'node report.js', schedule: '*/5 * * * *' },
      { command: 'echo tick', schedule: '*/2 * * * * *' },
      { command: 'node daily.js', schedule: '@daily' },
    ]);
    expect(parseAppJson('{}').cron).toEqual([]);
  });

  it('refuses what cannot be a schedule or a command, naming the field', () => {
    for (const [cron, field] of [
      [[{ command: 'x', schedule: 'every minute' }], 'cron.0.schedule'],
      [[{ command: 'x', schedule: '* * * *' }], 'cron.0.schedule'],
      [[{ command: 'x', schedule: '* * * * * * *' }], 'cron.0.schedule'],
      [[{ command: 'x', schedule: '* * * * *\n* * * * *' }], 'cron.0.schedule'],
      [[{ command: '', schedule: '* * * * *' }], 'cron.0.command'],
      [[{ schedule: '* * * * *' }], 'cron.0.command'],
      [{ command: 'x' }, 'cron'],
      [Array.from({ length: 21 }, () => ({ command: 'x', schedule: '* * * * *' })), 'cron'],
    ] as const) {
      expect(() => parseAppJson(JSON.stringify({ cron })), JSON.stringify(cron)).toThrow(
        `app.json: ${field}:`,
      );
    }
  });
});
