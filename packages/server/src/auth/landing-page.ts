/**
 * The HTML served at `/` on the API port (seed 001 §2): the early-2000s landing page for visitors who
 * are not logged in, with the login options that are configured, and a minimal signed-in page after
 * login. Plain HTML and one inline stylesheet: no framework, no JavaScript, no animation. Every value
 * that reaches the page is HTML-escaped.
 */

/** The login options a visitor is offered (from `config.auth`). */
export interface LoginOptions {
  /** The password form (`auth.passwordLogin`). */
  password: boolean;
  /** "Login with GitHub" (`auth.github.clientId` set). */
  github: boolean;
  /** OpenID Connect providers, by name, with their button text. */
  oidc: ReadonlyArray<{ name: string; label: string }>;
}

/** What the signed-in page shows. */
export interface SignedInView {
  user: { name: string; email: string | null };
  teams: ReadonlyArray<{ name: string; role: string }>;
  apps: ReadonlyArray<{ name: string; project: string; status: string; url: string | null }>;
  /** The session's CSRF token, sent back by the logout form. */
  csrfToken: string;
}

/** Messages shown above the login form after a failed attempt; the query string picks one by key. */
export const LOGIN_MESSAGES: Readonly<Record<string, string>> = {
  failed: 'Wrong email or password.',
  locked: 'Too many wrong passwords. Try again later.',
  'no-user': 'No miniPaaS user matches this account. Ask an admin for an invite.',
  provider: 'The login provider did not complete the login. Try again.',
  expired: 'The login took too long or was started elsewhere. Try again.',
  'logged-out': 'You are logged out.',
};

/** Content-Security-Policy of both pages: inline styles only, forms post to this origin only. */
export const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

const STYLE = `
        body {
            background-color: #c0c0c0;
            font-family: "Courier New", monospace;
            margin: 0;
            padding: 20px;
        }
        .container {
            max-width: 600px;
            margin: 0 auto;
            background-color: #ffffff;
            border: 2px solid #000000;
            padding: 20px;
        }
        .header {
            text-align: right;
            margin-bottom: 20px;
        }
        .main-box {
            border: 1px solid #000000;
            padding: 30px;
            text-align: center;
            background-color: #f0f0f0;
        }
        h1 {
            font-size: 24px;
            margin: 0 0 20px 0;
        }
        p {
            line-height: 1.6;
            margin: 10px 0;
        }
        .login-btn {
            background-color: #ffffff;
            border: 2px solid #000000;
            padding: 8px 16px;
            font-family: "Courier New", monospace;
            font-size: 14px;
            cursor: pointer;
            text-decoration: none;
            color: #000000;
            display: inline-block;
        }
        .footer {
            margin-top: 20px;
            text-align: center;
            font-size: 11px;
        }
        .login-box {
            border: 1px solid #000000;
            margin-top: 20px;
            padding: 10px;
        }
        .message {
            border: 1px solid #000000;
            padding: 5px;
            margin-bottom: 10px;
        }
        table {
            border-collapse: collapse;
            width: 100%;
        }
        td, th {
            border: 1px solid #000000;
            padding: 4px;
            text-align: left;
            font-size: 13px;
        }
        input {
            font-family: "Courier New", monospace;
        }`;

function page(body: string): string {
  return `<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>miniPaaS</title>
    <style>${STYLE}
    </style>
</head>
<body>
    <div class="container">
${body}
        <div class="footer">
            <p>Created by wedsmoker</p>
            <p><a href="https://github.com/wedsmoker">github.com/wedsmoker</a></p>
        </div>
    </div>
</body>
</html>
`;
}

/** The landing page for visitors who are not logged in. `message` is a key of LOGIN_MESSAGES. */
export function renderLandingPage(options: LoginOptions, message?: string): string {
  const buttons: string[] = [];
  if (options.github)
    buttons.push('<a href="/auth/github" class="login-btn" id="login-github">Login with GitHub</a>');
  for (const p of options.oidc)
    buttons.push(
      `<a href="/auth/oidc/${escapeHtml(p.name)}" class="login-btn" id="login-oidc-${escapeHtml(p.name)}">${escapeHtml(p.label)}</a>`,
    );
  if (options.password) buttons.push('<a href="#login" class="login-btn" id="login-password">Login</a>');
  const text = message !== undefined && Object.hasOwn(LOGIN_MESSAGES, message) ? LOGIN_MESSAGES[message] : '';
  const notice = text ? `            <div class="message" id="message">${escapeHtml(text)}</div>\n` : '';
  const form = options.password
    ? `
        <div class="login-box" id="login">
${notice}            <form method="post" action="/auth/login">
                <table>
                    <tr><td><label for="login-name">Email</label></td><td><input id="login-name" name="login" type="email" autocomplete="username" required maxlength="200"></td></tr>
                    <tr><td><label for="login-pass">Password</label></td><td><input id="login-pass" name="password" type="password" autocomplete="current-password" required maxlength="1024"></td></tr>
                </table>
                <p><button type="submit" class="login-btn">Log in</button></p>
            </form>
        </div>`
    : notice
      ? `\n        <div class="login-box" id="login">\n${notice}        </div>`
      : '';
  const none = buttons.length === 0 ? '<span>No login is configured.</span>' : buttons.join('\n            ');
  return page(`        <div class="header">
            ${none}
        </div>

        <div class="main-box">
            <h1>miniPaaS</h1>
            <h2>YOUR cloud</h2>

            <p>Deploy applications from GitHub repositories to Docker containers.</p>
            <p>Automatic builds. Environment variables. Live logs. Local or remote.</p>
            <p>Self-hosted platform-as-a-service with minimal dependencies.</p>
        </div>${form}
`);
}

/** The minimal page a logged-in user sees at `/` until the dashboard arrives. */
export function renderSignedInPage(view: SignedInView): string {
  const who = view.user.email
    ? `${escapeHtml(view.user.name)} (${escapeHtml(view.user.email)})`
    : escapeHtml(view.user.name);
  const teams = view.teams.length
    ? `<table id="teams">
                <tr><th>Team</th><th>Role</th></tr>
${view.teams.map((t) => `                <tr><td>${escapeHtml(t.name)}</td><td>${escapeHtml(t.role)}</td></tr>`).join('\n')}
            </table>`
    : '<p id="teams">You are in no team yet.</p>';
  const apps = view.apps.length
    ? `<table id="apps">
                <tr><th>App</th><th>Project</th><th>Status</th><th>URL</th></tr>
${view.apps
  .map(
    (a) =>
      `                <tr><td>${escapeHtml(a.name)}</td><td>${escapeHtml(a.project)}</td><td>${escapeHtml(a.status)}</td><td>${
        a.url ? `<a href="${escapeHtml(a.url)}">${escapeHtml(a.url)}</a>` : '-'
      }</td></tr>`,
  )
  .join('\n')}
            </table>`
    : '<p id="apps">No apps yet.</p>';
  return page(`        <div class="header">
            <form method="post" action="/auth/logout">
                <input type="hidden" name="_csrf" value="${escapeHtml(view.csrfToken)}">
                <button type="submit" class="login-btn" id="logout">Log out</button>
            </form>
        </div>

        <div class="main-box">
            <h1>miniPaaS</h1>
            <p id="whoami">Signed in as ${who}.</p>
        </div>

        <div class="login-box">
            <h2>Your teams</h2>
            ${teams}
        </div>

        <div class="login-box">
            <h2>Your apps</h2>
            ${apps}
        </div>
`);
}
