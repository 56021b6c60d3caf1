package event

// RedisKind says what a RedisResult is.
type RedisKind uint8

const (
	RedisAnswer     RedisKind = iota // a reply paired with its request
	RedisUnanswered                  // a request without a reply within the timeout, left at exit, or dropped
	RedisUnmatched                   // a reply to no request seen (the connection seen mid-stream, or requests lost)
)

func (k RedisKind) String() string {
	switch k {
	case RedisUnanswered:
		return "unanswered"
	case RedisUnmatched:
		return "unmatched"
	}
	return "answer"
}

// RedisResult is one request/reply pair (or a lone request or reply) of
// -R (internal/redis), for the sinks. Conn names the local socket and
// its owner, Src the local end. The byte slices are valid until the
// tracker's next call.
type RedisResult struct {
	Kind   RedisKind
	Side   AppSide
	TS     uint64 // the reply's time; an unanswered request's own
	Conn   Conn
	Cmd    []byte // upper case; nil for an unmatched reply
	Key    []byte // first argument, escaped (\xNN), bounded; nil: none or not kept
	KeyCut bool
	Args   uint32 // arguments after the command
	// Reply (not for Unanswered): its RESP type byte, null, the error's
	// first word (error replies).
	Reply     byte
	ReplyNull bool
	Err       []byte
	LatencyNs uint64 // reply time - request time (Answer only)
}

// RedisSummary is one command's numbers at one side: since the last
// interval line (Final false) or since start (Final true, at exit).
// Calls count requests answered or given up (unanswered); Errors the error
// replies; latency percentiles from a histogram of 8 buckets per power of
// two (±6%), 0 when no pair.
type RedisSummary struct {
	Side                  AppSide
	Cmd                   []byte
	Calls, Errors, Paired uint64
	P50Ns, P99Ns, MaxNs   uint64
	Final                 bool
}
