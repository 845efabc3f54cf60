// A real, OpenID-certified token server (oidc-provider) laid out like two Keycloak realms,
// for `make interop`. Loopback only, synthetic clients and users, keys made at start.
//
//   node interop/oidc_server.mjs <oidc-provider install dir> <port>
//
// Realms: http://127.0.0.1:<port>/realms/care and /realms/lab, each with its own RSA keys,
// discovery (/.well-known/openid-configuration), JWKS, token endpoint (client credentials),
// and authorization code flow with the development login/consent pages (any password).
// Access tokens are RFC 9068 JWTs (typ at+jwt, client_id, no azp) for the resource
// `patient-api` (user tokens also carry `azp`, as Keycloak's do). A control API drives the tests:
//   POST /control/<realm>/rotate            a new key signs from now on; the old one stays published
//   POST /control/<realm>/withdraw?kid=K    stop publishing key K
//   POST /control/<realm>/down | /up        the realm stops answering (connections reset) / answers
//   GET  /control/<realm>/keys              {"signing": kid, "published": [kid, ...]}
// Prints "READY <port>" on stdout once listening.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [installDir, portText] = process.argv.slice(2);
const { default: Provider } = await import(
  pathToFileURL(join(installDir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href);

const HOST = '127.0.0.1';
const port = Number(portText);
const AUDIENCE = 'patient-api';
const RESOURCE = 'https://patient-api.interop.example';
const SCOPES = 'patient.read agenda.read billing.read';

// Client credentials clients and one interactive (user) client per realm. Both realms have
// a `billing` client: the same name, two different organisations.
const CLIENTS = {
  care: [
    { client_id: 'gp-frontdesk', client_secret: 'gp-frontdesk-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'billing', client_secret: 'care-billing-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'ward-app', client_secret: 'ward-app-secret', grant_types: ['authorization_code'], redirect_uris: ['http://127.0.0.1/callback'], response_types: ['code'] },
    // Left with Keycloak's default audience (`account`): Vigie must refuse its tokens.
    { client_id: 'legacy-app', client_secret: 'legacy-app-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  ],
  lab: [
    { client_id: 'billing', client_secret: 'lab-billing-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  ],
};

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomUUID().slice(0, 8)}`, use: 'sig', alg: 'RS256' };
}

class Realm {
  constructor(name) {
    this.name = name;
    this.issuer = `http://${HOST}:${port}/realms/${name}`;
    this.signing = newKey();
    this.published = [this.signing];
    this.down = false;
    this.build();
  }

  build() {
    // The signing key first: oidc-provider signs with the first key that fits the algorithm.
    const keys = [this.signing, ...this.published.filter((k) => k.kid !== this.signing.kid)];
    const provider = new Provider(this.issuer, {
      clients: CLIENTS[this.name],
      jwks: { keys },
      findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
      scopes: ['openid', ...SCOPES.split(' ')],
      features: {
        clientCredentials: { enabled: true },
        devInteractions: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => RESOURCE,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (ctx, indicator, client) => ({
            scope: SCOPES,
            audience: client.clientId === 'legacy-app' ? 'account' : AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
      pkce: { required: () => false },
      // User tokens carry `azp` as Keycloak's do; client-credentials tokens only client_id.
      extraTokenClaims: async (ctx, token) => (token.accountId && token.accountId !== token.clientId
        ? { azp: token.clientId } : undefined),
      loadExistingGrant: async (ctx) => {
        const grantId = ctx.oidc.result?.consent?.grantId
          || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
      },
    });
    // The JWKS publishes what the control API says, which may differ from the signing set
    // (a withdrawn key is gone from the JWKS even if a token signed with it is still around).
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/jwks' && ctx.status === 200) {
        ctx.body = { keys: this.published.map(({ kty, n, e, kid, use, alg }) => ({ kty, n, e, kid, use, alg })) };
        ctx.set('cache-control', 'max-age=3600');  // Vigie must bound this by jwks_refresh_seconds
      }
    });
    this.callback = provider.callback();
  }

  rotate() {
    this.signing = newKey();
    this.published = [this.signing, ...this.published];
    this.build();
  }

  withdraw(kid) {
    this.published = this.published.filter((k) => k.kid !== kid);
    if (this.signing.kid === kid) this.signing = this.published[0] ?? newKey();
    this.build();
  }

  keys() {
    return { signing: this.signing.kid, published: this.published.map((k) => k.kid) };
  }
}

const realms = { care: new Realm('care'), lab: new Realm('lab') };

function control(req, res, [name, action]) {
  const realm = realms[name];
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (!realm) return reply(404, { error: 'no such realm' });
  const url = new URL(req.url, `http://${HOST}`);
  if (action === 'rotate' && req.method === 'POST') realm.rotate();
  else if (action === 'withdraw' && req.method === 'POST') realm.withdraw(url.searchParams.get('kid'));
  else if (action === 'down' && req.method === 'POST') realm.down = true;
  else if (action === 'up' && req.method === 'POST') realm.down = false;
  else if (action !== 'keys') return reply(404, { error: 'no such action' });
  return reply(200, realm.keys());
}

const server = createServer((req, res) => {
  const parts = req.url.split('?')[0].split('/').filter(Boolean);
  if (parts[0] === 'control') return control(req, res, parts.slice(1));
  const realm = parts[0] === 'realms' ? realms[parts[1]] : undefined;
  if (!realm) {
    res.writeHead(404);
    return res.end();
  }
  if (realm.down) return req.socket.destroy();  // unreachable, as far as a client can tell
  req.originalUrl = req.url;  // oidc-provider derives its mount path (the realm) from it
  req.url = req.url.slice(`/realms/${realm.name}`.length) || '/';
  return realm.callback(req, res);
});

server.keepAliveTimeout = 1000;
server.listen(port, HOST, () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
