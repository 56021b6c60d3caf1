# The "empty packet programs" build for the -t floor (issue 17): every packet
# program of internal/packet returns at once (iterators untouched), so a run
# measures what attaching the hooks costs before any stamp or record. Run it
# on a COPY of the tree (bench/floor/README.md), never commit its output:
#   cp -r . /tmp/nw-empty-tree && cd /tmp/nw-empty-tree/internal/packet \
#     && python3 ../../bench/floor/empty-build.py && cd ../.. \
#     && go generate ./internal/packet && go build -o /tmp/nw-empty ./cmd/netwatcher
for fn in ['packet.bpf.c', 'packet_rx.h', 'packet_tx.h']:
    lines = open(fn).read().split('\n'); out = []; i = 0
    while i < len(lines):
        l = lines[i]; out.append(l)
        if l.startswith('SEC(') or l.startswith('NW_CTX_TWINS('):
            sec = l; j = i
            while '{' not in lines[j]:
                j += 1; out.append(lines[j])
            i = j
            if 'iter/' not in sec:
                ret = '1' if ('cgroup_skb' in sec or 'netfilter' in sec) else '0'
                out.append('\treturn %s; /* EMPTY */' % ret)
        i += 1
    open(fn, 'w').write('\n'.join(out))
