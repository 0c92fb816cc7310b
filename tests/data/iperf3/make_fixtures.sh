#!/bin/sh
# Re-make the iperf3 fixtures with the real iperf3 in two scratch namespaces (run as root, from this
# directory). Nothing happens in the root network namespace: the veth pair is created inside A and
# its peer moved straight to B. Both namespaces are deleted on exit.
# ONLY="udp.json pair_tcp" ./make_fixtures.sh re-makes only those (other tests read figures from the
# committed files: re-make a file only when it has to change); MADE_WITH.txt says which run made which file.
set -eu
A=kslab-iperffix-a
B=kslab-iperffix-b
OUT=${OUT:-.}
cleanup() {
    for ns in $A $B; do
        for pid in $(ip netns pids $ns 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    sleep 0.2
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add $A
ip netns add $B
ip -n $A link add v0 type veth peer name v1 netns $B
ip -n $A addr add 10.99.0.1/24 dev v0
ip -n $B addr add 10.99.0.2/24 dev v1
ip -n $A link set lo up; ip -n $A link set v0 up
ip -n $B link set lo up; ip -n $B link set v1 up
SERVER=10.99.0.2

wait_listen() {   # wait until something listens on TCP port $1 in namespace B (no fixed sleep)
    hex=$(printf '%04X' "$1")
    for _ in $(seq 1 200); do
        if ip netns exec $B cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == "0A" {print $2}' | grep -qi ":$hex\$"; then return 0; fi
        sleep 0.05
    done
    echo "server did not listen on $1" >&2; return 1
}

wanted() { [ -z "${ONLY:-}" ] || case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

run() {   # run NAME CLIENT-FLAGS: one-off server in B, client in A
    name=$1; shift
    wanted "$name" || return 0
    ip netns exec $B iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    spid=$!
    wait_listen 5201
    ip netns exec $A iperf3 -c $SERVER -p 5201 "$@" > "$OUT/$name" || true
    wait $spid || true
}

# JSON, client side
run tcp.json            -t 2 -J
run udp_reverse.json    -u -R -t 2 -J
run tcp_bidir.json      --bidir -t 2 -J
run udp_bidir.json      -u --bidir -t 2 -J
run parallel30.json     -P 30 -t 1 -J
run udp_unlimited.json  -u -b 0 -t 1 -J
run tcp_reverse.json    -R -t 2 -J
run udp.json            -u -t 2 -J
run udp_parallel3.json  -u -P 3 -t 2 -J
run bidir_parallel2.json --bidir -P 2 -t 2 -J
run parallel3.json      -P 3 -t 2 -J
# human-readable, client side
run tcp.txt             -t 2
run udp_reverse.txt     -u -R -t 2
run tcp_bidir.txt       --bidir -t 2
run parallel3.txt       -P 3 -t 2
run tcp_reverse.txt     -R -t 2
run udp_parallel3.txt   -u -P 3 -t 2
run bidir_parallel2.txt --bidir -P 2 -t 2

# pairs: the client's text report and the server's JSON of the same run
pair() {   # pair NAME CLIENT-FLAGS
    name=$1; shift
    wanted "pair_$name" || return 0
    ip netns exec $B iperf3 -s -1 -p 5201 -J > "$OUT/pair_${name}_server.json" 2>/dev/null &
    spid=$!
    wait_listen 5201
    ip netns exec $A iperf3 -c $SERVER -p 5201 "$@" > "$OUT/pair_${name}.txt" || true
    wait $spid || true
}
pair tcp          -t 2
pair udp_reverse  -u -R -t 2
pair bidir        --bidir -t 2
pair parallel3    -P 3 -t 2
pair udp          -u -t 2
run udp.txt             -u -t 2
run udp_bidir.txt       -u --bidir -t 2

# errors
if wanted busy.json; then
# busy: a server running a long test; a second client gets iperf3's "server is busy"
ip netns exec $B iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
spid=$!
wait_listen 5201
ip netns exec $A iperf3 -c $SERVER -p 5201 -t 4 >/dev/null 2>&1 &
cpid=$!
sleep 1
ip netns exec $A iperf3 -c $SERVER -p 5201 -t 1 -J > "$OUT/busy.json" || true
wait $cpid || true
wait $spid || true
fi
# refused: nobody listens
if wanted refused.json; then
ip netns exec $A iperf3 -c $SERVER -p 5201 -t 1 -J > "$OUT/refused.json" || true
fi
# port in use: a second server on a port already taken
if wanted port_in_use_server.json; then
ip netns exec $B iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
spid=$!
wait_listen 5201
ip netns exec $B iperf3 -s -1 -p 5201 -J > "$OUT/port_in_use_server.json" || true
kill $spid 2>/dev/null || true
wait $spid 2>/dev/null || true
fi

{ echo "iperf3: $(iperf3 --version | head -1)"; echo "kernel: $(uname -r)"; echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "loadavg: $(cat /proc/loadavg)"; } >&2   # copy into MADE_WITH.txt with the files made
