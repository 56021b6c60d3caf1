# The "minimal record" build for the default mode's floor (issue 17): the
# two per-segment programs of the default mode (nw_pkt_tx_out, nw_pkt_rx_tcp)
# only reserve a packet-sized record, stamp it and submit it (no socket
# lookup, no parsing), and the reader skips it unread: what one record per
# segment crossing to user space costs. Run it from the root of a COPY of
# the tree (bench/floor/README.md), never commit its output:
#   cp -r . /tmp/nw-rec-tree && cd /tmp/nw-rec-tree \
#     && python3 bench/floor/rec-build.py && go generate ./internal/packet \
#     && go build -o /tmp/nw-rec ./cmd/netwatcher
import re

REC = ('\t{ struct nw_pkt_event *x = bpf_ringbuf_reserve(&nw_pkt_events, PKT_BASE, 0);'
       ' if (x) { x->type = 0xff; x->ts = bpf_ktime_get_ns();'
       ' nw_submit(&nw_pkt_events, x, PKT_BASE); } return 1; } /* REC */')

for fn, prog in [('internal/packet/packet_tx.h', 'nw_pkt_tx_out'),
                 ('internal/packet/packet_rx.h', 'nw_pkt_rx_tcp')]:
    src = open(fn).read()
    m = re.search(r'NW_CTX_TWINS\("cgroup_skb/[a-z]+", struct __sk_buff, %s,[^\n]*\n\{\n' % prog, src)
    if not m:
        raise SystemExit('rec-build: %s not found in %s' % (prog, fn))
    src = src[:m.end()] + REC + '\n' + src[m.end():]
    open(fn, 'w').write(src)

fn = 'internal/engine/reader.go'
src = open(fn).read()
sig = 'func (rd *reader) one(raw []byte) bool {\n'
if sig not in src:
    raise SystemExit('rec-build: reader.one not found')
src = src.replace(sig, sig + '\tif len(raw) > 0 && raw[0] == 0xff { // REC\n\t\treturn true\n\t}\n')
open(fn, 'w').write(src)
print('rec-build: patched nw_pkt_tx_out, nw_pkt_rx_tcp, reader.one')
