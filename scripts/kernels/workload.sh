#!/bin/sh
# The scripted workload of the kernel matrix, about 10 s. Loopback only:
# 127.0.0.1, ::1 and 10.9.9.9/32 added to lo of the namespace it runs in (the
# guest's only namespace, or a fresh namespace on the host: run.sh never runs
# it in the host's own namespace). Needs nwpeer and busybox on PATH.
#
#   8080  HTTP: 5 GETs on one keep-alive connection, 3 with Connection: close
#   8082  IPv6 echo, 4000 bytes
#   8081  request/response on 10.9.9.9 for 5 s; from 1 s to 3 s the client
#         drops every segment it receives (nwpeer rr --blackout: a socket
#         filter), so both ends wait for their retransmit timer and
#         retransmit (timeout retransmits, -r). Until 2026-11 the address
#         was deleted for 2 s instead: then the retransmissions fail for
#         want of a route, which 5.10 does not trace, and -r saw one only
#         when a retransmit timer happened to fire after the address came
#         back (4 of 14 5.10 runs saw none)
#   8083  bulk into a receiver that never reads (busybox nc into a pipe
#         nobody drains): the window closes and the sender's zero-window
#         probes carry an old sequence number, rejected by the receiver
#         (TCP_OLD_SEQUENCE: -e records)
#   53    DNS (nwpeer dns-serve, UDP and TCP, 127.0.0.1 and ::1): 8 queries
#         each way (-N; the UDP ones are -u's flows); and a ping of 127.0.0.1
#         and ::1 (-I echoes)
#   6379  Redis (nwpeer redis-serve): 20 commands, 4 in flight (-R)
# The ports are nwkcheck's defaults (--ports, --nwpeer-servers).
ip addr add 10.9.9.9/32 dev lo 2>/dev/null

nwpeer serve --http -l 127.0.0.1:8080 --duration 10s >/dev/null &
nwpeer serve --echo -l 10.9.9.9:8081 --duration 10s >/dev/null &
nwpeer serve --echo -l '[::1]:8082' --duration 10s >/dev/null &
busybox nc -l -p 8083 | sleep 10 &
sleep 0.5

nwpeer http-get -r 127.0.0.1:8080 -n 5 >/dev/null
nwpeer http-get -r 127.0.0.1:8080 -n 3 --close >/dev/null
nwpeer connect -r '[::1]:8082' --send 4000 >/dev/null

nwpeer rr -r 10.9.9.9:8081 --duration 5s --blackout 1s:2s >/dev/null &
nwpeer bulk -r 127.0.0.1:8083 --bytes 100000000 --duration 4s >/dev/null 2>&1 &
wait

# beyond TCP, after the TCP part (its servers live 10 s from the start:
# under TCG the steps below took long enough before it that the echo
# server of the blackout was gone before its retransmits, seen on 5.10)
nwpeer dns-serve -l 127.0.0.1:53 --duration 20s >/dev/null &
dns4=$!
nwpeer dns-serve -l '[::1]:53' --duration 20s >/dev/null &
dns6=$!
nwpeer redis-serve -l 127.0.0.1:6379 --duration 20s >/dev/null &
redis=$!
sleep 0.5
nwpeer dns-query -r 127.0.0.1:53 -n 8 >/dev/null
nwpeer dns-query -r '[::1]:53' -n 8 --tcp >/dev/null
nwpeer redis-query -r 127.0.0.1:6379 -n 20 -P 4 >/dev/null
ping -c 3 -i 0.2 127.0.0.1 >/dev/null
ping -6 -c 3 -i 0.2 ::1 >/dev/null 2>&1 || ping6 -c 3 ::1 >/dev/null
kill $dns4 $dns6 $redis 2>/dev/null
wait
exit 0
