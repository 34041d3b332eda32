#!/bin/sh
# hosts.t - a sweep across several "hosts" over TCP (`make check-hosts`; not
# part of `make check`: it needs root to make network namespaces).
#
# Three network namespaces stand for three hosts h0, h1, h2 (10.77.0.1-3/24),
# each linked by a veth pair to a bridge in a fourth namespace (the switch).
# mpirun runs in h0 (as host h0) and starts its daemons on h1 and h2
# through a launcher agent in place of ssh (--mca plm_rsh_agent): the agent
# enters the namespace of the host named in the hostfile, with a UTS
# namespace of its own so that each host has its own hostname. MPI and
# Open MPI's own traffic go over TCP on the veth links only (--mca btl
# tcp,self: no shared memory between the "hosts", which share this machine's
# /dev/shm; oob and btl restricted to 10.77.0.0/16). The namespaces share
# the file system, so the job, its checkpoints and the results store have
# the same paths on every host, as on a cluster's shared file system.
#
# The job is the demo's small sweep (tools/demo.sh DEMO_SIZE=small
# DEMO_STEPS=prepare: 28 checkpoints, 252 tasks), run with one rank per
# host:
# - on one host (mpirun -np 3 here) and on three hosts: every task once,
#   OK, and the numbers (loss, loss16, qid, qid_se, sqnr_db, kl, tokens,
#   windows) identical;
# - a host dies mid-run: once the store holds 30 rows, every process of
#   host h2 (its Open MPI daemon and its qid rank) is killed with SIGKILL;
#   mpirun must end the job within KILL_TIMEOUT (60 s) with a non-zero
#   status and Open MPI's error for a lost daemon or rank; the rows stored
#   before the kill are still there, and a rerun on the three hosts
#   completes with every task exactly once and the same numbers.
#
# Skips, with the reason, where namespaces cannot be made (not root, no
# iproute2 or unshare, a container without CAP_SYS_ADMIN, veth or bridge).
. "$(dirname "$0")/taplib.sh"
tap_abs_paths
require_exe "$QIDA"
require_cmd mpirun
[ "$(id -u)" -eq 0 ] || skip_all "network namespaces need root"
command -v ip >/dev/null 2>&1 || skip_all "no ip command (Debian's iproute2; make deps installs it as root)"
command -v unshare >/dev/null 2>&1 || skip_all "no unshare command (util-linux)"
NS=qh$$
probe_err=$(ip netns add "$NS-probe" 2>&1) || skip_all "cannot create a network namespace here: $probe_err"
probe_err=$(ip netns exec "$NS-probe" unshare --uts true 2>&1)
probe_rc=$?
ip netns del "$NS-probe" 2>/dev/null
[ $probe_rc -eq 0 ] || skip_all "cannot enter a namespace with a UTS namespace of its own: $probe_err"

KILL_TIMEOUT=60
plan 15
tap_tmpdir
T=$TAP_TMP
HOSTS="h0 h1 h2"

cleanup() {
    for h in $HOSTS sw; do
        pids=$(ip netns pids "$NS-$h" 2>/dev/null)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        ip netns del "$NS-$h" 2>/dev/null
    done
    tap_end
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the hosts ---------------------------------------------------------------
setup_err=$T/setup.err
setup_hosts() {
    ip netns add "$NS-sw" && ip -n "$NS-sw" link add br0 type bridge && ip -n "$NS-sw" link set br0 up || return 1
    i=0
    for h in $HOSTS; do
        i=$((i + 1))
        ip netns add "$NS-$h" && ip -n "$NS-$h" link set lo up &&
            ip link add eth0 netns "$NS-$h" type veth peer name "$h" netns "$NS-sw" &&
            ip -n "$NS-sw" link set "$h" master br0 && ip -n "$NS-sw" link set "$h" up &&
            ip -n "$NS-$h" addr add "10.77.0.$i/24" dev eth0 && ip -n "$NS-$h" link set eth0 up || return 1
    done
}
if ! setup_hosts 2>"$setup_err"; then
    echo "# $(tr '\n' ' ' <"$setup_err")"
    skip_all "cannot link network namespaces by veth pairs to a bridge here"
fi

# the launcher agent: "agent HOST COMMAND..." as "ssh HOST COMMAND..."
cat >"$T/agent" <<EOF
#!/bin/sh
host=\$1
shift
exec ip netns exec "$NS-\$host" unshare --uts sh -c 'hostname "\$0" && eval "\$1"' "\$host" "\$*"
EOF
chmod +x "$T/agent"
printf 'h0 slots=1\nh1 slots=1\nh2 slots=1\n' >"$T/hostfile"
# Open MPI's daemons inherit the environment through the agent
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI_HOSTS="mpirun --hostfile $T/hostfile -np 3 --mca plm_rsh_agent $T/agent --mca btl tcp,self
 --mca oob_tcp_if_include 10.77.0.0/16 --mca btl_tcp_if_include 10.77.0.0/16"
# run_hosts ARGS...: mpirun in host h0, ranks 0, 1, 2 on h0, h1, h2
run_hosts() {
    ip netns exec "$NS-h0" unshare --uts sh -c 'hostname h0 && exec "$@"' sh $MPI_HOSTS "$@"
}

# ranks land on three hosts, each with its own name and addresses
out=$(run_hosts sh -c 'echo "$OMPI_COMM_WORLD_RANK $(hostname) $(ip -4 -o addr show scope global | awk "{ print \$4 }")"' 2>"$T/names.err" | sort)
is "0 h0 10.77.0.1/24
1 h1 10.77.0.2/24
2 h2 10.77.0.3/24" "$out" "mpirun in h0 starts one rank on each of h0, h1, h2 through the agent"

# ---- the job: the demo's small sweep -------------------------------------------
D=$T/demo
DEMO_DIR=$D DEMO_SIZE=small DEMO_STEPS=prepare sh "$ROOT"/tools/demo.sh "$QIDA" >"$T/prepare.out" 2>&1
rc=$?
ok $rc "the demo's small suite and job are prepared"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/prepare.out" | tail -20
JOB=$D/demo.job
STORE=$D/results.h5
COLS=key,loss,loss16,qid,qid_se,sqnr_db,kl,tokens,windows,status
numbers() { "$QIDA" results "$STORE" --csv --columns "$COLS" | tail -n +2 | sort; }
rows() { "$QIDA" results "$STORE" --csv --columns key 2>/dev/null | tail -n +2 | wc -l | tr -d ' '; }
keys_once() { "$QIDA" results "$STORE" --csv --columns key | tail -n +2 | sort -u | wc -l | tr -d ' '; }

$MPIRUN -np 3 "$QIDA" run --threads 1 "$JOB" >"$T/one.out" 2>&1
ok $? "one host: mpirun -np 3 qid run completes"
numbers >"$T/one.csv"
is 252 "$(wc -l <"$T/one.csv" | tr -d ' ')" "one host: 252 rows"
rm -f "$STORE" "$STORE.lock"

run_hosts "$QIDA" run --threads 1 "$JOB" >"$T/three.out" 2>&1
rc=$?
ok $rc "three hosts over TCP: qid run completes"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/three.out" | tail -20
numbers >"$T/three.csv"
is 252 "$(keys_once)" "three hosts: 252 tasks, each once"
ok "$(cmp -s "$T/one.csv" "$T/three.csv"; echo $?)" "three hosts: every number identical to one host"
ranks=$("$QIDA" results "$STORE" --csv --columns rank | tail -n +2 | sort -u | tr '\n' ' ')
is "1 2 " "$ranks" "three hosts: the workers on h1 and h2 computed the tasks"
rm -f "$STORE" "$STORE.lock"

# ---- a host dies mid-run ----------------------------------------------------------
run_hosts "$QIDA" run --threads 1 "$JOB" >"$T/kill.out" 2>"$T/kill.err" &
job=$!
n=0
i=0
while [ $i -lt 600 ] && kill -0 $job 2>/dev/null; do
    n=$(rows)
    [ "${n:-0}" -ge 30 ] && break
    sleep 0.1
    i=$((i + 1))
done
victims=$(ip netns pids "$NS-h2")
kill -9 $victims 2>/dev/null
t_kill=$(date +%s)
echo "# killed host h2 (pids $(echo $victims)) with $n rows in the store"
ok "$([ "${n:-0}" -ge 30 ] && [ "$n" -lt 252 ]; echo $?)" "the kill came mid-run ($n of 252 rows stored)"
waited=0
while kill -0 $job 2>/dev/null && [ $waited -lt $KILL_TIMEOUT ]; do
    sleep 1
    waited=$(($(date +%s) - t_kill))
done
if kill -0 $job 2>/dev/null; then
    ok 1 "the job ends within $KILL_TIMEOUT s of losing host h2 (it hangs)"
    ip netns pids "$NS-h0" | xargs -r kill -9 2>/dev/null
    wait $job
    ok 1 "mpirun reports the lost host"
else
    wait $job
    rc=$?
    ok "$([ $rc -ne 0 ]; echo $?)" "the job ends within $KILL_TIMEOUT s of losing host h2 (exit $rc after $waited s)"
    err=$(cat "$T/kill.err")
    case "$err" in
    # Open MPI 4.1's words for it, depending on the moment: the daemon's
    # connection lost, its rank's death noticed, or (as it reports a daemon
    # lost before it is marked running) "unable to reliably start"
    *"lost communication with a remote daemon"* | *"exited on signal 9"* | *"on node h2"* | \
        *"unable to reliably start one or more daemons"*) r=0 ;;
    *) r=1 ;;
    esac
    ok $r "mpirun reports the lost host, rank or daemon"
    grep -v '^ *$' "$T/kill.err" | grep -v '^---' | head -8 | sed 's/^/#   /'
fi
after=$(rows)
ok "$([ "${after:-0}" -ge "$n" ]; echo $?)" "the store opens after the kill and keeps the $n rows seen before it ($after)"

run_hosts "$QIDA" run --threads 1 "$JOB" >"$T/rerun.out" 2>&1
rc=$?
ok $rc "the rerun on three hosts completes"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/rerun.out" | tail -20
is "252 252" "$(rows) $(keys_once)" "after the rerun: 252 rows, every task exactly once"
numbers >"$T/rerun.csv"
ok "$(cmp -s "$T/one.csv" "$T/rerun.csv"; echo $?)" "after the rerun: every number identical to one host"
