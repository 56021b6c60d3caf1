package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/netwatcher/netwatcher/internal/event"
)

// The console gets a listener line only when it is new, changed or gone;
// connects.log gets every listener, sorted, at every walk.
func TestListenStateUpdate(t *testing.T) {
	var ls listenState
	a := event.Listener{Sock: 0xa0, Netns: 2, Local: netip.MustParseAddrPort("0.0.0.0:80"), MaxBacklog: 128}
	b := event.Listener{Sock: 0xb0, Netns: 1, Local: netip.MustParseAddrPort("[::]:443"), MaxBacklog: 4096}
	walk := func(ls2 ...event.Listener) (all, changed []string) {
		ls.cur = append(ls.cur[:0], ls2...)
		ls.update(func(l *event.Listener) { all = append(all, fmt.Sprintf("%x", l.Sock)) },
			func(what string, l *event.Listener) {
				changed = append(changed, fmt.Sprintf("%s %x %d", what, l.Sock, l.Drops))
			})
		slices.Sort(changed)
		return all, changed
	}
	check := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	all, changed := walk(a, b)
	check("first walk: all", all, []string{"b0", "a0"}) // netns 1 first
	check("first walk: changed", changed, []string{"sample a0 0", "sample b0 0"})
	all, changed = walk(b, a)
	check("unchanged: all", all, []string{"b0", "a0"})
	check("unchanged: changed", changed, nil)
	a.Drops = 3
	_, changed = walk(a, b)
	check("drops", changed, []string{"sample a0 3"})
	all, changed = walk(a)
	check("closed: all", all, []string{"a0"})
	check("closed: changed", changed, []string{"closed b0 0"})
	_, changed = walk(a)
	check("closed once", changed, nil)
}
