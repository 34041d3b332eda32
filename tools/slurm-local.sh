#!/usr/bin/env bash
# slurm-local.sh - a private one-node Slurm for testing the batch scripts in
# slurm/ (test/slurm.t, `make check-slurm`). Not for production clusters.
#
#   tools/slurm-local.sh install    install Debian's slurm-wlm and munge if missing
#                                   (root with apt-get only; QID_NO_APT=1 forbids);
#                                   exit 0 when present or installed, 3 when they are
#                                   missing and cannot be installed here (the reason
#                                   is printed on stdout, for a TAP skip line)
#   tools/slurm-local.sh start DIR  start munged, slurmctld and `slurmd -N localhost`
#                                   with everything under DIR (created if needed):
#                                   DIR/etc/slurm.conf, state, spool, logs, pid files,
#                                   the munge key and socket (directory mode 0711).
#                                   Waits until the node is idle; prints
#                                   `export SLURM_CONF=DIR/etc/slurm.conf`. On failure
#                                   it stops what it started and prints the daemons'
#                                   log tails.
#   tools/slurm-local.sh stop DIR   cancel every job of that Slurm, wait for them to
#                                   end, stop slurmd, slurmctld and munged (SIGTERM,
#                                   SIGKILL after 20 s); safe to call twice or after
#                                   a failed start
#
# The node is this machine as `slurmd -C` describes it (CPUs, sockets, cores,
# threads, RealMemory), named localhost at 127.0.0.1, in one partition
# `debug`. ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no
# cgroups, so it runs in containers), select/cons_tres with CR_Core, no
# accounting database (squeue/scontrol, not sacct), MinJobAge=600 so finished
# jobs stay visible to `scontrol show job` for the test, cred_expire=5 so a
# requeued job may start again after 6 s instead of 121 (5 is the least Slurm
# takes), the scheduler looping every second (a requeued job whose begin
# time has passed waits for the next loop: up to 60 s by default). Lines in
# $SLURM_LOCAL_CONF_EXTRA are appended to slurm.conf. Ports are the first
# two free ones from 16817 + (pid mod 1000) * 2 upward, so two of these can run
# side by side. Daemons run as the calling user (root in CI); start and stop
# write nothing outside DIR and touch no system service.
set -u

die() { echo "slurm-local: error: $*" >&2; exit 1; }
need_cmds="slurmctld slurmd munged munge unmunge sbatch srun squeue scontrol scancel sinfo"

missing_cmds() {
    local c m=""
    for c in $need_cmds; do command -v "$c" >/dev/null 2>&1 || m="$m $c"; done
    echo "$m"
}

cmd_install() {
    local m
    m=$(missing_cmds)
    [ -z "$m" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "Slurm is not installed (missing:$m) and this is not root, so apt-get cannot install slurm-wlm and munge"
        return 3
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Slurm is not installed (missing:$m) and there is no apt-get to install slurm-wlm and munge"
        return 3
    fi
    if [ "${QID_NO_APT:-0}" = 1 ]; then
        echo "Slurm is not installed (missing:$m) and QID_NO_APT=1 forbids apt-get"
        return 3
    fi
    echo "slurm-local: installing slurm-wlm munge with apt-get" >&2
    # Keep the packages' postinst scripts from starting system services (a
    # system munged or slurmd): a policy-rc.d that denies every start, only
    # for the time of this install and only when the system has none.
    local policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\n# temporary, tools/slurm-local.sh install\nexit 101\n' >$policy && chmod 755 $policy && ours=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0 log
    log=$(mktemp "${TMPDIR:-/tmp}/slurm-local-apt-XXXXXX")
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >"$log" 2>&1 || rc=$?
    [ $ours = 1 ] && rm -f $policy
    if [ $rc != 0 ]; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        echo "apt-get install slurm-wlm munge failed (exit $rc)"
        return 3
    fi
    rm -f "$log"
    m=$(missing_cmds)
    if [ -n "$m" ]; then
        echo "slurm-wlm and munge were installed but these commands are still missing:$m"
        return 3
    fi
    return 0
}

port_free() { ! ss -Htln 2>/dev/null | awk '{ print $4 }' | grep -q "[:.]$1\$"; }

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

pidfile_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }

# stop_daemon NAME PIDFILE: SIGTERM, wait up to 20 s, then SIGKILL.
stop_daemon() {
    local pid
    pid=$(pidfile_pid "$2")
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 200); do pid_alive "$pid" || return 0; sleep 0.1; done
    echo "slurm-local: $1 (pid $pid) did not stop in 20 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 1 50); do pid_alive "$pid" || return 0; sleep 0.1; done
    echo "slurm-local: $1 (pid $pid) is still running" >&2
    return 1
}

cmd_stop() {
    local d=$1 rc=0 ids
    [ -d "$d" ] || return 0
    d=$(cd "$d" && pwd)
    export SLURM_CONF=$d/etc/slurm.conf
    if pid_alive "$(pidfile_pid "$d/run/slurmctld.pid")"; then
        ids=$(squeue -h -o %i 2>/dev/null)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            scancel $ids 2>/dev/null
            for _ in $(seq 1 300); do
                [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
                sleep 0.1
            done
            [ -n "$(squeue -h -o %i 2>/dev/null)" ] && echo "slurm-local: jobs still listed after 30 s: $(squeue -h -o '%i %T' | tr '\n' ' ')" >&2
        fi
    fi
    stop_daemon slurmd "$d/run/slurmd.pid" || rc=1
    stop_daemon slurmctld "$d/run/slurmctld.pid" || rc=1
    stop_daemon munged "$d/run/munged.pid" || rc=1
    return $rc
}

fail_start() {
    local d=$1 f
    shift
    echo "slurm-local: error: $*" >&2
    for f in munged.log slurmctld.log slurmd.log; do
        [ -s "$d/log/$f" ] && { echo "--- $d/log/$f (last lines)" >&2; tail -n 15 "$d/log/$f" >&2; }
    done
    cmd_stop "$d"
    exit 1
}

cmd_start() {
    local d=$1 host node port m
    m=$(missing_cmds)
    [ -z "$m" ] || die "Slurm commands missing:$m (tools/slurm-local.sh install)"
    mkdir -p "$d" || die "cannot create $d"
    d=$(cd "$d" && pwd)
    [ -e "$d/etc/slurm.conf" ] && pid_alive "$(pidfile_pid "$d/run/slurmctld.pid")" && die "a Slurm is already running under $d"
    mkdir -p "$d/etc" "$d/state" "$d/spool" "$d/log" "$d/run" "$d/munge" || die "cannot create directories under $d"
    # munged refuses a socket directory writable by others; 0711 as in /run/munge
    chmod 0711 "$d/munge"
    chmod 0755 "$d" "$d/etc" "$d/run" "$d/log"

    # munge: a fresh key, its own socket
    local sock=$d/munge/munge.socket.2
    (umask 077 && dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none) || die "cannot write the munge key"
    chmod 0400 "$d/munge/munge.key"
    munged --socket="$sock" --key-file="$d/munge/munge.key" --pid-file="$d/run/munged.pid" \
        --log-file="$d/log/munged.log" --seed-file="$d/munge/munged.seed" --force 2>>"$d/log/munged.log" ||
        fail_start "$d" "munged did not start"
    for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
    munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 || fail_start "$d" "munge/unmunge round trip failed on $sock"

    # the node as slurmd -C sees this machine, named localhost
    node=$(slurmd -C 2>/dev/null | head -1)
    case "$node" in NodeName=*) ;; *) fail_start "$d" "slurmd -C printed no node line" ;; esac
    node=$(echo "$node" | sed -e 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/' -e 's/ UpTime=.*//')
    host=$(hostname -s 2>/dev/null || hostname)
    port=$((16817 + ($$ % 1000) * 2))
    for _ in $(seq 1 200); do
        port_free $port && port_free $((port + 1)) && break
        port=$((port + 2))
    done
    cat >"$d/etc/slurm.conf" <<EOF
# written by tools/slurm-local.sh start: a private one-node Slurm for tests
ClusterName=qidtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=5
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/slurmd-%n
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
DependencyParameters=kill_invalid_depend
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
${SLURM_LOCAL_CONF_EXTRA:-}
EOF
    export SLURM_CONF=$d/etc/slurm.conf
    slurmctld -f "$SLURM_CONF" -c 2>>"$d/log/slurmctld.log" || fail_start "$d" "slurmctld did not start"
    for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    scontrol ping 2>/dev/null | grep -q UP || fail_start "$d" "slurmctld does not answer scontrol ping"
    slurmd -f "$SLURM_CONF" -N localhost 2>>"$d/log/slurmd.log" || fail_start "$d" "slurmd did not start"
    local state=""
    for _ in $(seq 1 600); do
        state=$(sinfo -h -n localhost -o %T 2>/dev/null)
        [ "$state" = idle ] && break
        sleep 0.1
    done
    [ "$state" = idle ] || fail_start "$d" "node localhost is '$state', not idle, after 60 s"
    echo "export SLURM_CONF=$SLURM_CONF"
}

case "${1:-}" in
install) cmd_install ;;
start) [ $# = 2 ] || die "usage: $0 start DIR"; cmd_start "$2" ;;
stop) [ $# = 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
*) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
