package httpinfo

import (
	"strings"
	"testing"
)

var benchPayloads = []struct {
	name string
	in   string
	cut  bool
}{
	{"request", "GET /api/v1/users/12345/orders?limit=20&offset=40 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n", false},
	{"response", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\nDate: Tue, 25 Nov 2025 13:23:00 GMT\r\n\r\n{\"a\":1}", false},
	{"truncated", "GET /" + strings.Repeat("very/long/path/", 10) + "x", true},
	{"body", strings.Repeat("{\"key\": \"value\", \"n\": 12345}, ", 6), true},
	{"tls", tlsClientHello + strings.Repeat("\x00\x17", 60), true},
}

func BenchmarkParse(b *testing.B) {
	for _, bp := range benchPayloads {
		payload := []byte(bp.in)
		if len(payload) > 160 { // a typical capture limit
			payload = payload[:160]
		}
		b.Run(bp.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			var l Line
			for b.Loop() {
				l = Parse(payload, bp.cut)
			}
			_ = l
		})
	}
}

func BenchmarkAppendText(b *testing.B) {
	for _, bp := range benchPayloads[:3] {
		payload := []byte(bp.in)
		if len(payload) > 160 {
			payload = payload[:160]
		}
		l := Parse(payload, bp.cut)
		buf := make([]byte, 0, 512)
		b.Run(bp.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = l.AppendText(buf[:0], payload)
			}
		})
	}
}

// BenchmarkPairer measures one event (a request or a response) on one of
// 10,000 keep-alive connections, with two requests pipelined, after warm-up.
func BenchmarkPairer(b *testing.B) {
	const conns = 10000
	p := NewPairer(0, 0)
	reqL, respL := Parse([]byte("GET / HTTP/1.1\r\n"), false), Parse([]byte("HTTP/1.1 200 OK\r\n"), false)
	var seq [conns]uint32
	var n uint64
	event := func() {
		c := n % conns
		k := n / conns % 4 // per connection: req, req, resp, resp
		seq[c] += 100
		if k < 2 {
			p.Observe(c, seq[c], n, reqL)
		} else {
			p.Observe(c, seq[c], n, respL)
		}
		n++
	}
	for range 4 * conns {
		event()
	}
	b.ReportAllocs()
	for b.Loop() {
		event()
	}
	if st := p.Stats(); st.Unmatched != 0 || st.Dropped != 0 {
		b.Fatalf("Stats = %+v", st)
	}
}

// BenchmarkPairerChurn measures a whole short connection per op: request,
// response, Forget, with ids never reused (slots are recycled).
func BenchmarkPairerChurn(b *testing.B) {
	p := NewPairer(0, 0)
	reqL, respL := Parse([]byte("GET / HTTP/1.1\r\n"), false), Parse([]byte("HTTP/1.1 200 OK\r\n"), false)
	var c uint64
	op := func() {
		c++
		p.Observe(c, 1, c, reqL)
		p.Observe(c, 1, c+1, respL)
		p.Forget(c)
	}
	for range 1000 {
		op()
	}
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
}

// BenchmarkPairerEvict measures events on more connections than MaxConns, so
// every first event of a connection evicts another.
func BenchmarkPairerEvict(b *testing.B) {
	p := NewPairer(1024, 0)
	reqL := Parse([]byte("GET / HTTP/1.1\r\n"), false)
	var c uint64
	op := func() {
		c++
		p.Observe(c%4096, uint32(c), c, reqL)
	}
	for range 8192 {
		op()
	}
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
}
