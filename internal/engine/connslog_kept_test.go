package engine

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/event"
	"github.com/netwatcher/netwatcher/internal/output"
	"github.com/netwatcher/netwatcher/internal/track"
)

// TestConnsLogKeptLines: with -a the lines of closed connections are kept
// in their entries (output.AppendConnLogKept) and not formatted again;
// every connects.log rewrite must still equal the table formatted afresh:
// under connection churn, with late records of closed connections (owner,
// a second close, an open again), connections open at one rewrite and
// closed at the next, kept closed ones evicted (--max-closed) and their
// entries recycled for new connections (a stale line would name the
// previous connection's number).
func TestConnsLogKeptLines(t *testing.T) {
	for _, cfg := range []config.Config{
		{Quiet: true, All: true, Extra: true, Retrans: true},
		{Quiet: true, All: true},
	} {
		dir := t.TempDir()
		files, err := output.OpenFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Output, cfg.DataDir, cfg.MaxClosed = config.Table, dir, 300
		p := newPipeline(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, files, nil, nil)
		tmpl := churnTemplate(churnMix{opens: true})
		var held []event.Event // opens whose close comes a round later
		recycled := false
		seen := map[*track.Entry]uint64{} // entry -> the connection number it had
		for r := uint64(0); r < 50; r++ {
			var late []event.Event
			for i := range tmpl {
				ev := tmpl[i]
				churnRound(&ev, r)
				if ev.Type == event.ConnClose && i%5 == 0 {
					held = append(held, ev) // closed after the next rewrite
					continue
				}
				p.handle(&ev)
				if ev.Type == event.ConnClose && i%3 == 0 {
					owner := ev
					owner.Type, owner.Conn.Pid, owner.Conn.OwnerSrc = event.ConnOwner, 999, event.OwnerSyscall+1
					again := ev
					again.Stats.BytesAcked, again.Conn.RetransSegs, again.TS = 1<<40, 77, ev.TS+1e9
					reopen := ev
					reopen.Type, reopen.Conn.Pid = event.ConnOpen, 998
					late = append(late, owner, again, reopen)
				}
			}
			for i := range late {
				p.handle(&late[i])
			}
			p.dirty = true
			p.refresh()
			checkConnsLog(t, p, dir, r)
			for _, ev := range held {
				p.handle(&ev)
			}
			held = held[:0]
			p.table.Each(nil, func(e *track.Entry) {
				if id, ok := seen[e]; ok && id != e.Conn.ID {
					recycled = true
				}
				seen[e] = e.Conn.ID
			})
		}
		if !recycled {
			t.Error("no entry was recycled: the test misses that path")
		}
		files.Close()
	}
}

// checkConnsLog: connects.log is the table's entries formatted afresh,
// line by line (open connections' lines are only counted: their duration
// is up to the rewrite's now).
func checkConnsLog(t *testing.T, p *pipeline, dir string, round uint64) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "connects.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(got, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	i, closed := 0, 0
	p.table.Each(nil, func(e *track.Entry) {
		if i >= len(lines) {
			i++
			return
		}
		if e.Closed {
			closed++
			if want := output.AppendConnLog(nil, e, p.fields, 0); !bytes.Equal(lines[i], want) {
				t.Fatalf("round %d, line %d:\n got %s\nwant %s", round, i+1, lines[i], want)
			}
		}
		i++
	})
	if i != len(lines) || closed == 0 {
		t.Fatalf("round %d: connects.log has %d lines, the table %d (%d closed)", round, len(lines), i, closed)
	}
}
