package httpinfo_test

import (
	"fmt"

	"github.com/netwatcher/netwatcher/internal/httpinfo"
)

func ExampleParse() {
	for _, seg := range []struct {
		payload string
		cut     bool
	}{
		{"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n", false},
		{"GET /very/long/pa", true}, // capture limit reached inside the line
		{"HTTP/1.1 404 Not Found\r\n", false},
		{"HTTP/1.1 200 \"ok\"\r\n", false},
		{"Content-Type: text/html\r\n\r\n", false}, // a headers segment
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
	} {
		p := []byte(seg.payload)
		l := httpinfo.Parse(p, seg.cut)
		fmt.Printf("%-8v http_info=\"%s\"\n", l.Kind, l.AppendText(nil, p))
	}
	// Output:
	// request  http_info="GET /index.html HTTP/1.1"
	// request  http_info="GET /very/long/pa...(truncated)"
	// response http_info="HTTP/1.1 404 Not Found"
	// response http_info="HTTP/1.1 200 \"ok\""
	// none     http_info="-"
	// none     http_info="-"
}

func ExamplePairer() {
	p := httpinfo.NewPairer(0, 0) // default bounds
	const sock = 0xffff971842193f00
	get := []byte("GET /a HTTP/1.1\r\n\r\n")
	head := []byte("HEAD /b HTTP/1.1\r\n\r\n")
	ok := []byte("HTTP/1.1 200 OK\r\n\r\n")
	nf := []byte("HTTP/1.1 404 Not Found\r\n\r\n")

	// Two pipelined requests, then their responses, in order (ts in ns).
	p.Observe(sock, 1000, 1_000_000, httpinfo.Parse(get, false))
	p.Observe(sock, 1019, 1_200_000, httpinfo.Parse(head, false))
	for i, r := range []struct {
		seq uint32
		ts  uint64
		b   []byte
	}{{5000, 3_000_000, ok}, {5100, 3_500_000, nf}} {
		if m, matched := p.Observe(sock, r.seq, r.ts, httpinfo.Parse(r.b, false)); matched {
			fmt.Printf("response %d: %v -> %d in %d µs\n", i, m.Method, m.Status, m.Latency/1000)
		}
	}
	s, _ := p.Forget(sock)
	fmt.Printf("matched=%d min=%dµs avg=%dµs max=%dµs 2xx=%d 4xx=%d\n",
		s.Matched, s.MinLatency/1000, s.AvgLatency()/1000, s.MaxLatency/1000, s.Class[2], s.Class[4])
	// Output:
	// response 0: GET -> 200 in 2000 µs
	// response 1: HEAD -> 404 in 2300 µs
	// matched=2 min=2000µs avg=2150µs max=2300µs 2xx=1 4xx=1
}
