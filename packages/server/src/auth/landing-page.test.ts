import { describe, expect, it } from 'vitest';
import { renderLandingPage, renderSignedInPage } from './landing-page.ts';

const SENTENCES = [
  'Deploy applications from GitHub repositories to Docker containers.',
  'Automatic builds. Environment variables. Live logs. Local or remote.',
  'Self-hosted platform-as-a-service with minimal dependencies.',
];

describe('landing page', () => {
  it('has the three sentences, the seed styling, and no script', () => {
    const html = renderLandingPage({ password: true, github: true, oidc: [] });
    for (const s of SENTENCES) expect(html).toContain(`<p>${s}</p>`);
    expect(html).toContain('background-color: #c0c0c0');
    expect(html).toContain('font-family: "Courier New", monospace');
    expect(html).toContain('border: 2px solid #000000');
    expect(html).not.toMatch(/<script|javascript:|animation|transition|onclick/i);
  });

  it('offers exactly the configured login options', () => {
    const none = renderLandingPage({ password: false, github: false, oidc: [] });
    expect(none).not.toContain('/auth/github');
    expect(none).not.toContain('<form');
    expect(none).toContain('No login is configured.');
    const all = renderLandingPage({
      password: true,
      github: true,
      oidc: [{ name: 'corp', label: 'Login with Corp SSO' }],
    });
    expect(all).toContain('<a href="/auth/github" class="login-btn" id="login-github">Login with GitHub</a>');
    expect(all).toContain('href="/auth/oidc/corp"');
    expect(all).toContain('Login with Corp SSO');
    expect(all).toContain('<form method="post" action="/auth/login">');
  });

  it('shows only known messages and escapes labels', () => {
    const html = renderLandingPage(
      { password: true, github: false, oidc: [{ name: 'x', label: '<b>"x"</b>' }] },
      'failed',
    );
    expect(html).toContain('Wrong email or password.');
    expect(html).toContain('&lt;b&gt;&quot;x&quot;&lt;/b&gt;');
    const unknown = renderLandingPage(
      { password: true, github: false, oidc: [] },
      '<script>alert(1)</script>',
    );
    expect(unknown).not.toContain('alert');
    expect(renderLandingPage({ password: true, github: false, oidc: [] }, '__proto__')).not.toContain(
      'class="message"',
    );
  });
});

describe('signed-in page', () => {
  it('shows who, teams and apps, escaped, with a logout form carrying the CSRF token', () => {
    const html = renderSignedInPage({
      user: { name: 'alice<', email: 'alice@example.com' },
      teams: [{ name: 'core', role: 'owner' }],
      apps: [
        { name: 'web', project: 'default', status: 'running', url: 'http://web.localhost:8080' },
        { name: 'job', project: 'default', status: 'stopped', url: null },
      ],
      csrfToken: 'tok"en',
    });
    expect(html).toContain('Signed in as alice&lt; (alice@example.com).');
    expect(html).toContain('<td>core</td><td>owner</td>');
    expect(html).toContain('<a href="http://web.localhost:8080">');
    expect(html).toContain('<td>job</td><td>default</td><td>stopped</td><td>-</td>');
    expect(html).toContain('name="_csrf" value="tok&quot;en"');
    expect(html).not.toMatch(/<script/i);
  });
});
