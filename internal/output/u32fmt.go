package output

// appendU32 is strconv.AppendUint(b, uint64(v), 10) for the 32-bit numbers
// of a packet record (sequence and acknowledgement numbers: mostly nine or
// ten digits). The eight low digits are two independent halves of four,
// each two independent pairs, so the divisions do not wait for each other
// as appendUint's chain does (issue 17: a tenth of a packets.log line).
func appendU32(b []byte, v uint32) []byte {
	if v < 100000000 {
		return appendUint(b, uint64(v))
	}
	hi := v / 100000000 // 1..42
	lo := v - hi*100000000
	x, y := lo/10000, lo%10000
	x1, x2 := (x/100)*2, (x%100)*2
	y1, y2 := (y/100)*2, (y%100)*2
	l := len(b)
	if hi >= 10 {
		b = grow(b, 10)
		d := b[l : l+10 : l+10]
		d[0], d[1] = digits2[2*hi], digits2[2*hi+1]
		d[2], d[3], d[4], d[5] = digits2[x1], digits2[x1+1], digits2[x2], digits2[x2+1]
		d[6], d[7], d[8], d[9] = digits2[y1], digits2[y1+1], digits2[y2], digits2[y2+1]
		return b
	}
	b = grow(b, 9)
	d := b[l : l+9 : l+9]
	d[0] = byte('0' + hi)
	d[1], d[2], d[3], d[4] = digits2[x1], digits2[x1+1], digits2[x2], digits2[x2+1]
	d[5], d[6], d[7], d[8] = digits2[y1], digits2[y1+1], digits2[y2], digits2[y2+1]
	return b
}
