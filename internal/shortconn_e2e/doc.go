// Package shortconn_e2e holds end-to-end tests of short connections (the
// most common kind: health checks, HTTP with Connection: close, an RPC per
// connection), run as a user would: thousands of them one after another
// between two namespaces, socket memory reused at once, the real binary.
package shortconn_e2e
