package drops_test

import (
	"strings"
	"time"

	"github.com/netwatcher/netwatcher/internal/testsupport/lab"
	"github.com/netwatcher/netwatcher/internal/testsupport/nwtest"
)

// errorsOf returns the error records attributed to sock.
func errorsOf(r *nwtest.Run, sock string) []nwtest.Ev {
	return r.Find(func(e nwtest.Ev) bool { return e.Str("type") == "error" && e.Str("sock") == sock })
}

// waitErrors waits until at least n error records of sock exist (or the
// deadline passes) and then a little longer, so extra records show up.
func waitErrors(r *nwtest.Run, sock string, n int) []nwtest.Ev {
	deadline := time.Now().Add(lab.Wait)
	for len(errorsOf(r, sock)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return errorsOf(r, sock)
}

// errLogLines returns the err.log lines of sock.
func errLogLines(r *nwtest.Run, sock string) []string {
	var out []string
	for _, l := range strings.Split(r.File("err.log"), "\n") {
		if strings.HasPrefix(l, `error{sock="`+sock+`"`) {
			out = append(out, l)
		}
	}
	return out
}

func reasons(evs []nwtest.Ev) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Str("reason")]++
	}
	return m
}
