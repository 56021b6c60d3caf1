package lab

import (
	"testing"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/nstest"
)

func TestConn(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.NewPair(t)
	for _, v6 := range []bool{false, true} {
		t.Run(Family(v6), func(t *testing.T) {
			port, cliPort := RandPort(), RandPort()
			for cliPort == port {
				cliPort = RandPort()
			}
			c := Dial(t, p, v6, port, cliPort)
			srv, cli := p.B4, p.A4
			if v6 {
				srv, cli = p.B6, p.A6
			}
			if c.ServerAddr.Addr() != srv || c.ServerAddr.Port() != port || c.ClientAddr.Addr() != cli || c.ClientAddr.Port() != cliPort {
				t.Errorf("connection %v -> %v, want %v:%d -> %v:%d", c.ClientAddr, c.ServerAddr, cli, cliPort, srv, port)
			}
			if f := c.Flow(); f.Src != c.ClientAddr || f.Dst != c.ServerAddr {
				t.Errorf("flow %v, want client -> server", f)
			}
			if err := c.RoundTrip(3000, 1); err != nil {
				t.Fatal(err)
			}
			finish := c.Bulk(t)
			time.Sleep(50 * time.Millisecond)
			if sent := finish(); sent == 0 {
				t.Error("bulk transfer sent nothing")
			}
		})
	}
}

func TestRandPort(t *testing.T) {
	for range 1000 {
		if p := RandPort(); p < 20000 || p >= 40000 {
			t.Fatalf("port %d outside 20000..39999", p)
		}
	}
}
