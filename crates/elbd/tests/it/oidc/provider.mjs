// A real OpenID Connect provider (panva's oidc-provider) for the authenticate-oidc and
// authenticate-cognito tests: one instance laid out as a generic provider, one as Amazon
// Cognito, each on its own HTTPS server.
//
// node provider.mjs CERT_PEM KEY_PEM OIDC_ADDR COGNITO_ADDR POOL_ID CLIENT_ID CLIENT_SECRET
//   REDIRECT_URI [REDIRECT_URI...]
//
// Client CLIENT_ID-refresh (same secret) gets refresh tokens and access tokens of
// ACCESS_TOKEN_SECONDS.
//
// Prints `ready` once both listen. `GET /__requests` on either server counts the requests to
// its authorization, token and userinfo endpoints and echoes the last authorization query, so
// a test can tell whether elbd went to the provider, and what it asked for.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

import Provider from 'oidc-provider';

const [cert, key, oidcAddr, cognitoAddr, poolId, clientId, clientSecret, ...redirectUris] =
  process.argv.slice(2);
if (!redirectUris.length) {
  console.error('usage: node provider.mjs CERT KEY OIDC_ADDR COGNITO_ADDR POOL_ID CLIENT_ID CLIENT_SECRET REDIRECT_URI...');
  process.exit(2);
}
const tls = { cert: readFileSync(cert), key: readFileSync(key) };
const refreshingClient = `${clientId}-refresh`;
const ACCESS_TOKEN_SECONDS = 6;
// A signing key of this run's own, rather than the library's published development keys.
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

function provider(issuer, routes) {
  return new Provider(issuer, {
    routes,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, {
      client_id: refreshingClient,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    // Without the `offline_access` scope ALB does not ask for, the library gives none.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: (ctx, token, client) =>
        client.clientId === refreshingClient ? ACCESS_TOKEN_SECONDS : 3600,
    },
    // ALB sends no code_challenge; the library requires one by default.
    pkce: { required: () => false },
    scopes: ['openid'],
    // The claims each scope brings; ALB asks `openid` by default, the tests `email profile` too.
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    extraParams: ['elbd_test'],
    async findAccount(ctx, login) {
      return {
        accountId: login,
        async claims() {
          return { sub: login, email: `${login}@example.test`, name: `User ${login}` };
        },
      };
    },
    // The user consents to whatever the client asks: the built-in login form is the only page.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.account.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      await grant.save();
      return grant;
    },
  });
}

// Counts the requests to the three endpoints before the provider answers them.
function serve(addr, issuer, routes) {
  const callback = provider(issuer, routes).callback();
  const seen = { auth: 0, token: 0, userinfo: 0, last_auth_query: null };
  const server = createServer(tls, (req, res) => {
    const url = new URL(req.url, 'https://' + addr);
    if (url.pathname === '/__requests') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(seen));
      return;
    }
    if (url.pathname === routes.authorization) {
      seen.auth += 1;
      seen.last_auth_query = Object.fromEntries(url.searchParams);
    } else if (url.pathname === routes.token) {
      seen.token += 1;
    } else if (url.pathname === routes.userinfo) {
      seen.userinfo += 1;
    }
    callback(req, res);
  });
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
}

await Promise.all([
  serve(oidcAddr, `https://${oidcAddr}`, { authorization: '/auth', token: '/token', userinfo: '/me' }),
  // Cognito's issuer names the user pool; its endpoints are on the pool's domain, at its root.
  serve(cognitoAddr, `https://${cognitoAddr}/${poolId}`, {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    userinfo: '/oauth2/userInfo',
  }),
]);
process.on('SIGTERM', () => process.exit(0));
console.log('ready');
