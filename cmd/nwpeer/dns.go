package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// A minimal DNS server and client for the kernel matrix's -N workload (a
// guest has no dnsmasq or dig): every question gets an answer from
// nothing but its name and type.
//
//	nwpeer dns-serve -l ADDR:PORT          UDP and TCP on the same port
//	nwpeer dns-query -r ADDR:PORT -n N [--tcp]
//
// dns-serve: a name whose first label starts with "nx" is NXDOMAIN; A is
// answered 127.0.0.1, AAAA ::1 (one record each); any other type NOERROR
// with no answer. It prints READY <addr> once both sockets listen.
// dns-query sends N queries one after the other (types A, AAAA, TXT and a
// name "nx<i>.nwtest." in turn), each on a new socket (UDP) or connection
// (TCP), and prints one line per answer:
//
//	DNS <id> <qtype> <rcode> <answers> <ns from query sent to response read>

// dnsAnswer builds the response to query q (nil: not a query to answer).
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	off := 12
	for off < len(q) && q[off] != 0 {
		if q[off]&0xc0 != 0 {
			return nil
		}
		off += int(q[off]) + 1
	}
	if off+5 > len(q) {
		return nil
	}
	qend := off + 5
	qtype := binary.BigEndian.Uint16(q[off+1:])
	r := append([]byte(nil), q[:qend]...)
	r[2], r[3] = 0x84|q[2]&0x01, 0x80 // QR AA (RD copied), RA, NOERROR
	binary.BigEndian.PutUint16(r[6:], 0)
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	var rdata []byte
	switch {
	case q[12] >= 2 && strings.HasPrefix(string(q[13:15]), "nx"):
		r[3] |= 3 // NXDOMAIN
	case qtype == 1:
		rdata = []byte{127, 0, 0, 1}
	case qtype == 28:
		rdata = make([]byte, 16)
		rdata[15] = 1
	}
	if rdata != nil {
		binary.BigEndian.PutUint16(r[6:], 1)
		r = append(r, 0xc0, 12) // the question's name
		r = binary.BigEndian.AppendUint16(r, qtype)
		r = append(r, 0, 1, 0, 0, 0, 60)
		r = binary.BigEndian.AppendUint16(r, uint16(len(rdata)))
		r = append(r, rdata...)
	}
	return r
}

func cmdDNSServe(args []string) error {
	fs, c := newFlags("dns-serve", maxDuration)
	var addr string
	fs.StringVar(&addr, "l", "", "listen address ADDR:PORT (UDP and TCP)")
	if err := parse(fs, args, map[string]*string{"l": &addr}); err != nil {
		return err
	}
	ctx, cancel := c.context(false)
	defer cancel()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() { <-ctx.Done(); pc.Close(); ln.Close() }()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				for {
					var l [2]byte
					if _, err := io.ReadFull(conn, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(conn, q); err != nil {
						return
					}
					if r := dnsAnswer(q); r != nil {
						conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
					}
				}
			}()
		}
	}()
	say("READY %s", pc.LocalAddr())
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if r := dnsAnswer(buf[:n]); r != nil {
			pc.WriteTo(r, from)
		}
	}
}

func cmdDNSQuery(args []string) error {
	fs, c := newFlags("dns-query", maxDuration)
	var addr string
	var n int
	var tcp bool
	fs.StringVar(&addr, "r", "", "server ADDR:PORT")
	fs.IntVar(&n, "n", 4, "queries")
	fs.BoolVar(&tcp, "tcp", false, "over TCP (one connection per query)")
	if err := parse(fs, args, map[string]*string{"r": &addr}); err != nil {
		return err
	}
	ctx, cancel := c.context(false)
	defer cancel()
	types := []uint16{1, 28, 16, 1}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		name, qt := fmt.Sprintf("q%d.nwtest.", i), types[i%4]
		if i%4 == 3 {
			name = fmt.Sprintf("nx%d.nwtest.", i)
		}
		id := uint16(0x4e00 + i)
		q := binary.BigEndian.AppendUint16(nil, id)
		q = append(q, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
		for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
			q = append(append(q, byte(len(l))), l...)
		}
		q = append(q, 0)
		q = binary.BigEndian.AppendUint16(q, qt)
		q = append(q, 0, 1)
		r, ns, err := dnsExchange(ctx, addr, q, tcp)
		if err != nil {
			return err
		}
		if len(r) < 12 || binary.BigEndian.Uint16(r) != id {
			return errors.New("dns-query: a response of another query")
		}
		say("DNS %d %d %d %d %d", id, qt, r[3]&0xf, binary.BigEndian.Uint16(r[6:]), ns)
	}
	return nil
}

func dnsExchange(ctx context.Context, addr string, q []byte, tcp bool) ([]byte, int64, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	start := time.Now()
	if !tcp {
		if _, err := conn.Write(q); err != nil {
			return nil, 0, err
		}
		n, err := conn.Read(buf)
		return buf[:n], time.Since(start).Nanoseconds(), err
	}
	if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return nil, 0, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, 0, err
	}
	r := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = io.ReadFull(conn, r)
	return r, time.Since(start).Nanoseconds(), err
}
