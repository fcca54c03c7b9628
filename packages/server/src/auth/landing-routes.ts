/**
 * `GET /` on the API port: the landing page for visitors (seed 001 §2), the signed-in page for a browser
 * with a valid session. Public: the page itself is the way in.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PUBLIC_ROUTE } from '../http/auth.ts';
import {
  type LoginOptions,
  PAGE_CSP,
  renderLandingPage,
  renderSignedInPage,
  type SignedInView,
} from './landing-page.ts';

/** Reads what the signed-in page shows for a user; null when the user no longer exists. */
export interface SignedInSource {
  view(userId: string): Promise<Omit<SignedInView, 'csrfToken'> | null>;
}

export interface LandingRoutesOptions {
  options: LoginOptions;
  signedIn: SignedInSource;
  /** The CSRF token of the request's session (set by the session hook). */
  csrfTokenOf(req: { session: { sessionId: string } | null }): string | null;
}

/** Headers of every HTML page: no caching (they show who is logged in), a strict CSP. */
export function htmlHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', PAGE_CSP);
}

export function landingRoutes(app: FastifyInstance, opts: LandingRoutesOptions): void {
  app.get('/', PUBLIC_ROUTE, async (req, reply) => {
    htmlHeaders(reply);
    if (req.session) {
      const view = await opts.signedIn.view(req.session.userId);
      const csrfToken = opts.csrfTokenOf(req);
      if (view && csrfToken) return renderSignedInPage({ ...view, csrfToken });
    }
    const login = (req.query as Record<string, unknown> | undefined)?.login;
    return renderLandingPage(opts.options, typeof login === 'string' ? login : undefined);
  });
}
