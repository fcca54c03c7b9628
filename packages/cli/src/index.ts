/** Public surface of @minipaas/cli: the program factory and the API client. */
export { ApiClient, ApiError } from './api-client.ts';
export { CliError } from './cli-error.ts';
export type { Context } from './context.ts';
export { resolveTarget } from './credentials.ts';
export { createProgram, main } from './main.ts';
export { packDirectory } from './pack.ts';
export { SseParser } from './sse.ts';
