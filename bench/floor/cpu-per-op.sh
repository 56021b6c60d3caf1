#!/usr/bin/env bash
# usage: cpu-per-op.sh ROUNDS rr|http|churn "name|cmd" ...   (see bench/floor/README.md)
# http: wrk -t2 -c16 against nwpeer serve --http, as bench/run's http workload;
# churn: nwpeer churn -c 8 as bench/run's (an operation is one connection).
# Per window: workload rate, the workload's CPU per operation (client + server,
# cpuacct cgroup), the tool's CPU per operation, ksoftirqd's CPU per operation.
# cmd: "off", "tcpdump" or a netwatcher command line (it gets --data-dir and
# --ready-file; a command with its own --data-dir keeps it). STATS=1 adds per-program BPF ns/run and runs per operation.
set -u
rounds=$1; wl=$2; shift 2
PEER=${PEER:?set PEER to an nwpeer binary: go build -o /tmp/nwpeer ./cmd/nwpeer}
a=nwfa$$; b=nwfb$$
CG=/sys/fs/cgroup/cpuacct; W=$CG/nwfw$$; T=$CG/nwft$$
mkdir -p $W $T
cleanup(){ kill $srv 2>/dev/null; [ -n "${tp:-}" ] && kill $tp 2>/dev/null; wait 2>/dev/null; ip netns del $a 2>/dev/null; ip netns del $b 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled=0; sleep 0.5; for p in $(cat $W/cgroup.procs $T/cgroup.procs 2>/dev/null); do echo $p > $CG/cgroup.procs; done; rmdir $W $T; }
trap cleanup EXIT
ip netns add $a; ip netns add $b
ip link add va$$ netns $a type veth peer name vb$$ netns $b
ip -n $a addr add 10.77.0.1/24 dev va$$; ip -n $b addr add 10.77.0.2/24 dev vb$$
ip -n $a link set va$$ up; ip -n $b link set vb$$ up; ip -n $a link set lo up; ip -n $b link set lo up
# as bench/run: churn would otherwise run out of ports to TIME_WAIT within seconds
for n in $a $b; do ip netns exec $n sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.tcp_max_tw_buckets=4096 net.ipv4.ip_local_port_range="10000 65000" net.core.somaxconn=4096; done
mode=--echo; [ $wl = http ] && mode=--http
sh -c "echo \$\$ > $W/cgroup.procs; exec ip netns exec $b $PEER serve -l 10.77.0.2:7000 $mode --duration 3600s" >/dev/null &
srv=$!
sleep 1
runwl(){ sh -c "echo \$\$ > $W/cgroup.procs; case $wl in
  rr) exec ip netns exec $a $PEER rr -r 10.77.0.2:7000 -c 8 --size 1024 --duration $1 ;;
  churn) exec ip netns exec $a $PEER churn -r 10.77.0.2:7000 -n 100000000 -c 8 --duration $1 ;;
  http) exec ip netns exec $a wrk -t2 -c16 -d\$(echo $1 | tr -d s)s --timeout 5s http://10.77.0.2:7000/ ;;
  esac" | wlline; }
# wlline: the workload's last line as 'ops=N rate=R' (nwpeer rr prints it;
# wrk prints 'N requests in Xs, ...' and 'Requests/sec: R', as bench/run's http;
# nwpeer churn prints 'churn conns=N ... rate=R/s').
wlline(){ awk '/^churn conns=/{sub(/conns=/,"ops=")} / requests in /{ops=$1} /^Requests\/sec:/{rate=$2} /ops=/{l=$0} END{if(l!="")print l; else printf "http ops=%s rate=%s\n", ops, rate}'; }
ksi(){ cat /proc/[0-9]*/comm 2>/dev/null >/dev/null; for p in $(pgrep ksoftirqd); do awk '{print $1}' /proc/$p/schedstat; done | awk '{s+=$1}END{print s}'; }
for r in $(seq $rounds); do
for cfg in "$@"; do
  name=${cfg%%|*}; cmd=${cfg#*|}
  tp=
  case "$cmd" in
  off) ;;
  tcpdump) sh -c "echo \$\$ > $T/cgroup.procs; exec ip netns exec $b tcpdump -i vb$$ -n -w /dev/null" 2>/tmp/f-tcpd.err & tp=$!; sleep 1 ;;
  *) rm -f /tmp/f-ready$$; dd=""; case "$cmd" in *--data-dir*) ;; *) dd="--data-dir /tmp/f-dd$$";; esac
     sh -c "echo \$\$ > $T/cgroup.procs; exec $cmd $dd --ready-file /tmp/f-ready$$" >/dev/null 2>/tmp/f-nw.err & tp=$!
     for i in $(seq 100); do [ -e /tmp/f-ready$$ ] && break; sleep 0.1; done ;;
  esac
  sleep 1.5
  w0=$(cat $W/cpuacct.usage); t0=$(cat $T/cpuacct.usage); k0=$(ksi)
  out=$(runwl ${DUR:-3s})
  w1=$(cat $W/cpuacct.usage); t1=$(cat $T/cpuacct.usage); k1=$(ksi)
  ops=$(echo "$out" | sed -n 's/.*ops=\([0-9]*\).*/\1/p')
  rate=$(echo "$out" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
  progs=""
  if [ "${STATS:-0}" = 1 ] && [ -n "$tp" ] && [ "$cmd" != tcpdump ]; then
    sysctl -qw kernel.bpf_stats_enabled=1
    out2=$(runwl 2s)
    ops2=$(echo "$out2" | sed -n 's/.*ops=\([0-9]*\).*/\1/p')
    progs=$(for fd in /proc/$tp/fd/*; do l=$(readlink $fd); [ "$l" = "anon_inode:bpf-prog" ] || continue; awk '/prog_id/{print $2}' /proc/$tp/fdinfo/${fd##*/}; done | sort -u | while read id; do bpftool prog show id $id 2>/dev/null | head -1; done | awk -v ops=$ops2 '{name=""; t=0; c=0; for(i=1;i<=NF;i++){if($i=="name")name=$(i+1); if($i=="run_time_ns")t=$(i+1); if($i=="run_cnt")c=$(i+1)}; if(c>0 && name ~ /pkt/) printf " %s:%.0f/%.2f", name, t/c, c/ops}')
    sysctl -qw kernel.bpf_stats_enabled=0
  fi
  echo "R$r $name rate=$rate wl=$(( (w1-w0)/ops )) tool=$(( (t1-t0)/ops )) ksi=$(( (k1-k0)/ops ))$progs"
  [ -n "$tp" ] && { kill -INT $tp; wait $tp 2>/dev/null; }
  rm -rf /tmp/f-dd$$
done
done
