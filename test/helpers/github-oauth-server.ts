/**
 * A local stand-in for GitHub's OAuth web flow and the two REST calls a login makes (the internet is
 * not reachable in tests): `GET /login/oauth/authorize` approves at once as the current account and
 * redirects back with a code; `POST /login/oauth/access_token` checks the client secret, the code, the
 * redirect URI and the PKCE verifier like GitHub does and answers JSON; `GET /user` and
 * `GET /user/emails` answer for the access token. Real HTTP on a loopback port.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GithubAccount {
  id: number;
  login: string;
  name?: string;
  emails: Array<{ email: string; verified: boolean; primary: boolean }>;
}

export interface GithubStandIn {
  url: string;
  authorizeUrl: string;
  tokenUrl: string;
  apiUrl: string;
  /** The account the next authorization approves as. */
  account: GithubAccount;
  /** Requests the stand-in refused (what the client did wrong), for assertions. */
  refusals: string[];
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startGithubStandIn(client: {
  clientId: string;
  clientSecret: string;
  account: GithubAccount;
}): Promise<GithubStandIn> {
  const codes = new Map<
    string,
    { redirectUri: string; challenge: string | null; account: GithubAccount; used: boolean }
  >();
  const tokens = new Map<string, GithubAccount>();
  const refusals: string[] = [];
  const handle: GithubStandIn = {
    url: '',
    authorizeUrl: '',
    tokenUrl: '',
    apiUrl: '',
    account: client.account,
    refusals,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    const refuse = (status: number, why: string) => {
      refusals.push(why);
      json(status, { error: why });
    };
    void (async () => {
      if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
        const q = url.searchParams;
        const redirectUri = q.get('redirect_uri');
        if (q.get('client_id') !== client.clientId || !redirectUri)
          return refuse(400, 'bad authorize request');
        const code = randomBytes(10).toString('hex');
        codes.set(code, {
          redirectUri,
          challenge: q.get('code_challenge_method') === 'S256' ? q.get('code_challenge') : null,
          account: handle.account,
          used: false,
        });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        const state = q.get('state');
        if (state !== null) back.searchParams.set('state', state);
        res.writeHead(302, { location: back.toString() });
        return res.end();
      }
      if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
        const p = new URLSearchParams(await body(req));
        // GitHub answers errors with 200 and an error field; clients must cope.
        if (p.get('client_id') !== client.clientId || p.get('client_secret') !== client.clientSecret)
          return refuse(200, 'incorrect_client_credentials');
        const grant = codes.get(p.get('code') ?? '');
        if (!grant || grant.used) return refuse(200, 'bad_verification_code');
        grant.used = true;
        if (p.get('redirect_uri') !== grant.redirectUri) return refuse(200, 'redirect_uri_mismatch');
        if (grant.challenge) {
          const verifier = p.get('code_verifier') ?? '';
          const expected = createHash('sha256').update(verifier).digest('base64url');
          if (expected !== grant.challenge) return refuse(200, 'bad_verification_code (PKCE)');
        }
        const token = `gho_${randomBytes(16).toString('hex')}`;
        tokens.set(token, grant.account);
        if (!(req.headers.accept ?? '').includes('application/json')) {
          res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' });
          return res.end(`access_token=${token}&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer`);
        }
        return json(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      }
      if (req.method === 'GET' && (url.pathname === '/user' || url.pathname === '/user/emails')) {
        const m = /^(?:Bearer|token) (\S+)$/.exec(req.headers.authorization ?? '');
        const account = m ? tokens.get(m[1] as string) : undefined;
        if (!account) return refuse(401, 'Bad credentials');
        if (url.pathname === '/user')
          return json(200, { id: account.id, login: account.login, name: account.name ?? null });
        return json(
          200,
          account.emails.map((e) => ({ ...e, visibility: e.primary ? 'public' : null })),
        );
      }
      refuse(404, `no such endpoint ${req.method} ${url.pathname}`);
    })().catch((err: unknown) => refuse(500, (err as Error).message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  handle.url = base;
  handle.authorizeUrl = `${base}/login/oauth/authorize`;
  handle.tokenUrl = `${base}/login/oauth/access_token`;
  handle.apiUrl = base;
  handle.close = () =>
    new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    });
  return handle;
}
