"""Token endpoint grants: client credentials (RFC 6749 §4.4) and token exchange (RFC 8693)."""
