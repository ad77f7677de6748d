// Package keys owns one-time connection keys (DESIGN.md "Keys"): minting,
// redeeming exactly once cluster-wide, and the claims a key carries.
//
// Start with Store: Mint makes a key, Redeem consumes it. A key is 32 random
// bytes shown once as 43 chars of base64url; the JetStream KV bucket
// "rc-keys" holds only the hex SHA-256 of those bytes, with the claims and
// the expiry as value and a per-key TTL so the bucket empties itself.
// Redeem reads the entry and purges it on the condition that its revision is
// still the one read, so among any number of nodes racing for a key exactly
// one wins; every loser, and every reused, expired, unknown or malformed
// key, gets ErrInvalidKey. NATS trouble is ErrUnavailable instead, so the
// node answers 503, not 401.
//
// Minting has one code path and four doors: Store.Mint for Go, Handler for
// `POST /_/keys`, Serve for the NATS service rc.keys.mint, and the
// roomcast-mint CLI (cmd/mint), which calls one of the last two. The HTTP
// and NATS doors decode their body with ParseMintRequest.
package keys
