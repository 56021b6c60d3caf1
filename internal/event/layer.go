package event

// LayerTimes splits a record's four boundary stamps t into its three layer
// times (SPEC §2). Receive: t0 link, t1 IP, t2 L4 entry, t3 copy to the
// application (or the end) => mac, ip, l4. Send: t0 L4 (socket send), t1
// IP, t2 device queue, t3 driver => l4, ip, mac. A layer whose two stamps
// were not both seen, or are out of order, is 0 with its Missing bit
// (MissingMac, MissingIP; MissingTCP for the L4 layer of any protocol):
// never a wrapped number.
func LayerTimes(t *[4]uint64, rx bool) (mac, ip, l4 uint64, missing uint8) {
	m, i, l := 0, 1, 2
	if !rx {
		l, i, m = 0, 1, 2
	}
	var ok bool
	if mac, ok = span(t, m); !ok {
		missing |= MissingMac
	}
	if ip, ok = span(t, i); !ok {
		missing |= MissingIP
	}
	if l4, ok = span(t, l); !ok {
		missing |= MissingTCP
	}
	return mac, ip, l4, missing
}

// span is t[i+1] - t[i], or false when either stamp is missing or they
// are out of order.
func span(t *[4]uint64, i int) (uint64, bool) {
	a, b := t[i], t[i+1]
	if a == 0 || b == 0 || b < a {
		return 0, false
	}
	return b - a, true
}
