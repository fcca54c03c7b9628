import { MinipaasError } from './errors.ts';
import { isProcessType } from './names.ts';

/**
 * Parses a Procfile: one `type: command` per line; blank lines and `#` comments allowed.
 * Throws MINIPAAS_ERR_VALIDATION with the line number on malformed lines or duplicate types.
 */
export function parseProcfile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([^:\s]+)\s*:\s*(.*)$/.exec(line);
    if (!m)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `Procfile line ${i + 1}: expected "type: command"`);
    const [, type = '', command = ''] = m;
    if (!isProcessType(type)) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `Procfile line ${i + 1}: invalid process type "${type.slice(0, 40)}" (use 1-30 lowercase letters, digits, "-" or "_", starting with a letter)`,
      );
    }
    if (command.trim() === '') {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `Procfile line ${i + 1}: process type "${type}" has no command`,
      );
    }
    if (Object.hasOwn(out, type)) {
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        `Procfile line ${i + 1}: duplicate process type "${type}"`,
      );
    }
    out[type] = command.trim();
  }
  return out;
}
