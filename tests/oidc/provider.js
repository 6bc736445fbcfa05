// A real OpenID Connect provider for the tests: oauth2-mock-server (npm, maintained) serves
// discovery, JWKS and signs tokens; this script only starts it and lets a test steer it.
//
//   node provider.js PORT KEYS_FILE [TLS_KEY TLS_CERT]
//
// With TLS_KEY and TLS_CERT (PEM files) it serves HTTPS, as a real provider does; the
// issuer is https://127.0.0.1:PORT then, http://127.0.0.1:PORT without (development only).
// KEYS_FILE holds the provider's private JWKs (JSON list); missing or empty: one RS256 key
// is made and written there. Restarting with a file that lacks a key is how a key leaves
// the JWKS. The steering endpoints (test-only, on the same port under /test/):
//   POST /test/token  {"claims": {...}, "kid"?: "...", "expires_in"?: 300, "header"?: {...}}
//                     (a claim given as null is left out)
//                     -> {"token": "..."}  signed by the provider with its key
//   POST /test/rotate {"alg"?: "RS256", "count"?: 1}
//                     -> {"kid": "..."}  new keys, added to the JWKS and written to the file
// It prints "ready <issuer url>" when it listens.
const fs = require('fs');
const { OAuth2Server } = require('oauth2-mock-server');

async function main() {
  const [port, keysFile, tlsKey, tlsCert] = process.argv.slice(2);
  const server = new OAuth2Server(tlsKey, tlsCert);
  server.issuer.url = `${tlsKey ? 'https' : 'http'}://127.0.0.1:${port}`;
  let keys = [];
  if (fs.existsSync(keysFile)) {
    keys = JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  }
  for (const key of keys) {
    await server.issuer.keys.add(key);
  }
  if (keys.length === 0) {
    await server.issuer.keys.generate('RS256');
  }
  const save = () =>
    fs.writeFileSync(keysFile, JSON.stringify(server.issuer.keys.toJSON(true)));
  save();
  const app = server.service.requestHandler;
  app.post('/test/token', async (req, res) => {
    const body = req.body || {};
    const token = await server.issuer.buildToken({
      kid: body.kid,
      expiresIn: body.expires_in ?? 300,
      scopesOrTransform: (header, payload) => {
        Object.assign(header, body.header || {});
        Object.assign(payload, body.claims || {});
        // a claim given as null is left out of the token (to test a missing claim)
        for (const [name, value] of Object.entries(body.claims || {})) {
          if (value === null) delete payload[name];
        }
      },
    });
    res.json({ token });
  });
  app.post('/test/rotate', async (req, res) => {
    const body = req.body || {};
    let key;
    for (let i = 0; i < (body.count ?? 1); i += 1) {
      key = await server.issuer.keys.generate(body.alg ?? 'RS256');
    }
    save();
    res.json({ kid: key.kid });
  });
  await server.start(Number(port), '127.0.0.1');
  console.log(`ready ${server.issuer.url}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
