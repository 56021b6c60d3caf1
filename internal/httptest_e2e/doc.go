// Package httptest_e2e holds the end-to-end test of -i (HTTP info on packet
// records): a real HTTP/1.1 server and client in two network namespaces,
// netwatcher's records compared with tshark's decode of a capture of the
// same flow. It has no code of its own.
package httptest_e2e
