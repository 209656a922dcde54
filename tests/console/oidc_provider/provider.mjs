// A real OpenID provider for the console's sign-in test: panva/oidc-provider with its
// development interactions (any login is accepted and becomes the subject), one
// confidential client that must use PKCE S256, and a "groups" claim in the ID token
// (["keyswap-operators"] for logins starting with "team-").
//
// It listens on 127.0.0.1 (port 0: the system picks), prints {"port": N}, reads one line
// from stdin: {"issuer": ..., "redirect_uri": ..., "client_id": ..., "client_secret": ...},
// then prints {"ready": true}. SIGTERM stops it.
// env: OIDC_PROVIDER_DIR (the node_modules root the test installed with npm ci)
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(
  pathToFileURL(resolve(process.env.OIDC_PROVIDER_DIR, 'oidc-provider/lib/index.js')).href
);

let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
await new Promise((done) => server.listen(0, '127.0.0.1', done));
console.log(JSON.stringify({ port: server.address().port }));

const lines = createInterface({ input: process.stdin });
const config = JSON.parse(await new Promise((done) => lines.once('line', done)));

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  // The group claim rides in the ID token, which is all the console reads.
  conformIdTokenClaims: false,
  claims: { openid: ['sub', 'groups'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, groups: sub.startsWith('team-') ? ['keyswap-operators'] : [] }),
  }),
  features: { devInteractions: { enabled: true } },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
handler = provider.callback();
console.log(JSON.stringify({ ready: true }));

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
