#!/usr/bin/env bash
# A real two-node Slurm cluster on 127.0.0.1 for the tests and for a developer: one slurmctld and
# two slurmd daemons (node1, node2) on one host, each slurmd started with `-N nodeN` and a port of
# its own. No munge, no slurmdbd, no cgroups, no systemd: auth/none, cred/none, proctrack/linuxproc,
# task/none. Every file lives under one root folder (default /var/lib/mlorch-slurm, or
# MLORCH_SLURM_ROOT, or --state DIR), so the system's own Slurm set-up is never touched; every
# command finds the cluster through SLURM_CONF=<root>/etc/slurm.conf (`env` prints the line).
#
# Three traps this script guards against:
#  - GRES written on the NodeName lines can stay unknown to slurmctld until `scontrol update`:
#    with --gres, every node's Gres is read back after start and set with `scontrol update` when it
#    differs. Without --gres (the default) no GRES is configured at all. (Slurm also drops a GPU
#    that has no File=, and the node then registers INVAL: the fake GPUs are device files.)
#  - a slurmd relaunched after it was killed can meet a stale spool (old step sockets, job
#    scripts) and the next job is held: a slurmd is only ever started on a spool folder emptied
#    first; jobs slurmctld still counts on a node whose slurmd is restarted are ended (the node is
#    set DOWN: they died with it), and a node left DOWN, DRAINED or INVAL is set back with
#    `State=RESUME`.
#  - a payload orphaned by a killed slurmd or slurmstepd goes on writing to its output: `stop` and
#    `kill-node` kill the slurmstepd processes of this cluster and the job processes they started
#    (by ancestry, and by the SLURM_CLUSTER_NAME/SLURMD_NODENAME/SLURM_CONF every task carries).
#
# Every wait is bounded; every failure ends with one line on stderr and a non-zero exit.
set -Eeuo pipefail

PROG=slurm-cluster
CLUSTER_NAME=mlorch-test
NODES=(node1 node2)
CTLD_PORT="${MLORCH_SLURM_CTLD_PORT:-16817}"
NODE_PORT_BASE="${MLORCH_SLURM_NODE_PORT_BASE:-17000}"   # node1 listens on BASE+1, node2 on BASE+2
NODE_CPUS=1
NODE_MEMORY_MB=1024
# slurmctld flags a silent node NOT_RESPONDING after about this, and DOWN after about 2.5 times it
# (measured on Slurm 22.05: NOT_RESPONDING after ~10 s, DOWN after ~18 s with these two values;
# MessageTimeout bounds each ping of the dead node, so it counts as much as SlurmdTimeout)
SLURMD_TIMEOUT_S="${MLORCH_SLURM_SLURMD_TIMEOUT_S:-10}"
MESSAGE_TIMEOUT_S="${MLORCH_SLURM_MESSAGE_TIMEOUT_S:-5}"
KILL_WAIT_S=30               # SIGTERM -> SIGKILL grace (Slurm's default): mlorch removes its containers

START_TIMEOUT_S="${MLORCH_SLURM_START_TIMEOUT_S:-60}"   # start: until both nodes answer
STOP_TIMEOUT_S=30            # stop / kill-node: until every process of the cluster is gone
QUERY_TIMEOUT_S=15           # one scontrol / sinfo / squeue call
APT_TIMEOUT_S=900
APT_LOCK_TIMEOUT_S=120
LOCK_TIMEOUT_S=180           # another invocation of this script on the same root

usage() {
    cat <<'EOF'
usage: scripts/slurm-cluster.sh [--state DIR] [--gres gpu:N] [--timeout S] [--no-apt] COMMAND

commands:
  start          install Slurm if missing (apt, root), write the configuration and start
                 slurmctld and both slurmd; idempotent; waits until both nodes are idle
                 (--timeout, default 60 s); prints `export SLURM_CONF=...` on stdout
  stop           kill the daemons, the slurmstepd processes and the job processes of this
                 cluster; waits until they are gone
  status         daemons, nodes and queue; exit 0 when the cluster is fully up, 3 otherwise
  env            print `export SLURM_CONF=...` (eval "$(scripts/slurm-cluster.sh env)")
  kill-node N    SIGKILL node N's slurmd, its slurmstepd processes and their jobs (a node death)
  start-node N   start node N's slurmd again on a clean spool; RESUME the node if it stays DOWN
  (N: 1, 2, node1 or node2)

options:
  --state DIR    the cluster's root folder (default: $MLORCH_SLURM_ROOT or /var/lib/mlorch-slurm)
  --gres gpu:N   configure N fake GPUs per node (<root>/dev/gpuI, devices like /dev/null) and
                 check that slurmctld took them (scontrol update when not)
  --timeout S    how long start / start-node wait for the nodes (default 60)
  --no-apt       never install packages; fail with the command that would

environment: MLORCH_SLURM_ROOT, MLORCH_SLURM_CTLD_PORT (16817),
             MLORCH_SLURM_NODE_PORT_BASE (17000: node1 on 17001, node2 on 17002),
             MLORCH_SLURM_START_TIMEOUT_S (60), MLORCH_SLURM_SLURMD_TIMEOUT_S (10),
             MLORCH_SLURM_MESSAGE_TIMEOUT_S (5)
EOF
}

say() { echo "$PROG: $*" >&2; }
fail_cleanup=0   # 1 while a fresh `start` runs: a failure then stops what it started
die() {
    if [ "$fail_cleanup" = 1 ]; then
        fail_cleanup=0
        stop_all >/dev/null 2>&1 || true
    fi
    echo "$PROG: error: $*" >&2
    exit 1
}
on_unexpected_error() {
    trap - ERR
    die "line $2: \`$3\` failed (exit $1)"
}
trap 'on_unexpected_error $? $LINENO "$BASH_COMMAND"' ERR

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- arguments -----------------------------------------------------------------------------------
root="${MLORCH_SLURM_ROOT:-/var/lib/mlorch-slurm}"
gres="" use_apt=1 command="" node_arg=""
while [ $# -gt 0 ]; do
    case "$1" in
        --state)
            [ $# -ge 2 ] || { say "error: --state needs a folder"; exit 2; }
            root="$2"
            shift
            ;;
        --state=*) root="${1#*=}" ;;
        --gres)
            [ $# -ge 2 ] || { say "error: --gres needs gpu:N"; exit 2; }
            gres="$2"
            shift
            ;;
        --gres=*) gres="${1#*=}" ;;
        --timeout)
            [ $# -ge 2 ] || { say "error: --timeout needs seconds"; exit 2; }
            START_TIMEOUT_S="$2"
            shift
            ;;
        --timeout=*) START_TIMEOUT_S="${1#*=}" ;;
        --no-apt) use_apt=0 ;;
        -h | --help) usage; exit 0 ;;
        -*) say "error: unknown option $1 (see --help)"; exit 2 ;;
        *)
            if [ -z "$command" ]; then
                command="$1"
            elif [ -z "$node_arg" ]; then
                node_arg="$1"
            else
                say "error: unexpected argument $1 (see --help)"
                exit 2
            fi
            ;;
    esac
    shift
done
[ -n "$command" ] || { usage >&2; exit 2; }
[[ "$START_TIMEOUT_S" =~ ^[0-9]+$ ]] || { say "error: --timeout takes whole seconds"; exit 2; }
if [ -n "$gres" ] && ! [[ "$gres" =~ ^gpu:[1-9][0-9]*$ ]]; then
    say "error: --gres takes gpu:N (N >= 1), not $gres"
    exit 2
fi
case "$root" in
    /*) ;;
    *) root="$PWD/$root" ;;
esac
root="${root%/}"
if [ -z "$root" ]; then
    say "error: the cluster root cannot be /"
    exit 2
fi

conf="$root/etc/slurm.conf"
export SLURM_CONF="$conf"

node_name() {  # node_name ARG: node1 / node2 from 1, 2, node1, node2
    case "$1" in
        1 | node1) echo node1 ;;
        2 | node2) echo node2 ;;
        *) return 1 ;;
    esac
}
node_port() { echo $((NODE_PORT_BASE + ${1#node})); }

# --- processes of this cluster --------------------------------------------------------------------
# slurmctld and each slurmd carry MLORCH_SLURM_ROOT (a slurmd also MLORCH_SLURM_NODE) in their
# environment. A slurmstepd starts with an empty environment: it is known by the open slurmd log of
# its node (<root>/log/slurmd-NODE.log). Job tasks get an environment of their own, with the
# SLURM_CLUSTER_NAME, SLURMD_NODENAME and SLURM_CONF that slurmstepd sets.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(state_of "$1")" != Z ]; }
state_of() { awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null || true; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }
has_env() { grep -qzxF -- "$2" "/proc/$1/environ" 2>/dev/null; }
pids_with_env() {  # pids_with_env NAME=VALUE: the processes whose environment holds it
    local file
    while IFS= read -r file; do
        file="${file#/proc/}"
        echo "${file%/environ}"
    done < <(grep -lzxF -- "$1" /proc/[0-9]*/environ 2>/dev/null || true)
}

# daemon_pids KIND [NODE]: KIND is slurmctld, slurmd or slurmstepd
daemon_pids() {
    local kind="$1" node="${2:-}" pid
    if [ "$kind" = slurmstepd ]; then
        stepd_pids "$node"
        return 0
    fi
    for pid in $(pids_with_env "MLORCH_SLURM_ROOT=$root"); do
        [ "$(comm_of "$pid")" = "$kind" ] || continue
        [ -z "$node" ] || has_env "$pid" "MLORCH_SLURM_NODE=$node" || continue
        if alive "$pid"; then echo "$pid"; fi
    done
    return 0
}

stepd_pids() {  # stepd_pids [NODE]
    local pid fd target logs=() log
    if [ -n "${1:-}" ]; then logs=("$root/log/slurmd-$1.log"); else
        for log in "${NODES[@]}"; do logs+=("$root/log/slurmd-$log.log"); done
    fi
    for pid in $(pgrep -x slurmstepd || true); do
        for fd in /proc/"$pid"/fd/*; do
            target="$(readlink "$fd" 2>/dev/null || true)"
            for log in "${logs[@]}"; do
                # (a log renamed by a later start keeps the stepd that holds it ours: *.log.1)
                if [ "$target" = "$log" ] || [ "$target" = "$log.1" ]; then
                    alive "$pid" && echo "$pid"
                    continue 3
                fi
            done
        done
    done
    return 0
}

# descendants PID...: every live process below them (by parent id)
descendants() {
    [ $# -gt 0 ] || return 0
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) seen[r[i]] = 1 }
        { parent[$1] = $2; order[NR] = $1 }
        END {
            changed = 1
            while (changed) {
                changed = 0
                for (i = 1; i <= NR; i++) {
                    p = order[i]
                    if (!(p in seen) && (parent[p] in seen)) { seen[p] = 1; out[p] = 1; changed = 1 }
                }
            }
            for (p in out) print p
        }'
}

# job_pids [NODE]: the job processes of this cluster (of NODE only when given), never this shell
# or its ancestors
job_pids() {
    local node="${1:-}" pid stepds self_chain conf_of
    self_chain=" $(ancestors $$) "
    stepds="$(daemon_pids slurmstepd "$node" | tr '\n' ' ')"
    {
        # shellcheck disable=SC2086
        descendants $stepds
        for pid in $(pids_with_env "SLURM_CLUSTER_NAME=$CLUSTER_NAME"); do
            case "$(comm_of "$pid")" in slurmctld | slurmd | slurmstepd) continue ;; esac
            if [ -n "$node" ]; then
                has_env "$pid" "SLURMD_NODENAME=$node" || continue
            else
                has_env "$pid" "SLURMD_NODENAME=node1" || has_env "$pid" "SLURMD_NODENAME=node2" \
                    || continue
            fi
            # a task of another cluster of the same name (another root) is not ours
            # (a task may end while it is looked at: its vanished /proc entry is not an error)
            conf_of="$( (tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^SLURM_CONF=//p') 2>/dev/null || true)"
            [ -z "$conf_of" ] || [ "$conf_of" = "$conf" ] || continue
            echo "$pid"
        done
    } | sort -u | while read -r pid; do
        case "$self_chain" in *" $pid "*) continue ;; esac
        if alive "$pid"; then echo "$pid"; fi
    done
    return 0
}
ancestors() {
    local pid="$1"
    while [ -n "$pid" ] && [ "$pid" != 0 ]; do
        printf '%s ' "$pid"
        pid="$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$pid/stat" 2>/dev/null || true)"
    done
}

# kill_and_wait SIGNAL WHAT PID...: signal them, then wait (bounded) until all are gone; SIGKILL
# whatever outlives another signal for half the time.
kill_and_wait() {
    local signal="$1" what="$2" deadline pid left
    shift 2
    [ $# -gt 0 ] || return 0
    kill "-$signal" "$@" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -gt 0 ] || return 0
        if [ "$signal" != KILL ] && [ $((deadline - SECONDS)) -le $((STOP_TIMEOUT_S / 2)) ]; then
            signal=KILL
            kill -KILL "${left[@]}" 2>/dev/null || true
        fi
        [ "$SECONDS" -lt "$deadline" ] \
            || die "$what: processes ${left[*]} still alive after ${STOP_TIMEOUT_S}s"
        sleep 0.2
    done
}

# --- installation and version ---------------------------------------------------------------------
ensure_installed() {
    local missing=() cmd pkg log why
    for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client srun:slurm-client \
        squeue:slurm-client sinfo:slurm-client scontrol:slurm-client; do
        cmd="${pair%%:*}" pkg="${pair#*:}"
        command -v "$cmd" >/dev/null || missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$use_apt" = 0 ] || [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "Slurm is not installed: apt-get install -y ${missing[*]}"
    fi
    say "installing ${missing[*]} (apt-get)"
    log="$root/log/apt.log"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT_S" apt-get -y -q \
            -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_S" "$@" >>"$log" 2>&1
    }
    if ! apt_install install --no-install-recommends "${missing[@]}"; then
        apt_install update || true
        if ! apt_install install --no-install-recommends "${missing[@]}"; then
            why="$(grep -E '^E:' "$log" | tail -n 1 || true)"
            die "apt-get install ${missing[*]} failed: ${why:-see $log} (log: $log)"
        fi
    fi
}

slurm_version() {
    local out
    out="$(timeout "$QUERY_TIMEOUT_S" slurmctld -V 2>&1 || true)"
    [[ "$out" =~ ([0-9]+)\.([0-9]+)(\.[0-9]+)? ]] || die "cannot read the Slurm version: ${out:-no output}"
    echo "${BASH_REMATCH[0]}"
}
# version_ge HAVE MAJOR MINOR
version_ge() {
    local major minor
    IFS=. read -r major minor _ <<<"$1"
    [ "$major" -gt "$2" ] || { [ "$major" -eq "$2" ] && [ "$minor" -ge "$3" ]; }
}
plugin_dir() {  # where the plugins are (empty when not found: let Slurm use its built-in path)
    local dir
    for dir in /usr/lib/*-linux-gnu/slurm-wlm /usr/lib/slurm-wlm /usr/lib64/slurm /usr/lib/slurm \
        /usr/local/lib/slurm /usr/local/lib64/slurm; do
        [ -e "$dir/select_linear.so" ] && { echo "$dir"; return 0; }
    done
    return 0
}
has_plugin() {  # has_plugin NAME: true when present or when the plugin folder is unknown
    local dir
    dir="$(plugin_dir)"
    [ -z "$dir" ] || [ -e "$dir/$1.so" ]
}

# --- configuration --------------------------------------------------------------------------------
# write_config FOLDER VERSION: slurm.conf and its companions for this Slurm version
write_config() {
    local out="$1" version="$2" select controller gres_count="" node line files
    version_ge "$version" 17 11 || die "Slurm $version is too old (17.11 or newer needed)"
    has_plugin auth_none || die "Slurm $version has no auth/none plugin (this script runs without munge)"
    has_plugin cred_none || die "Slurm $version has no cred/none plugin (this script runs without munge)"
    has_plugin proctrack_linuxproc || die "Slurm $version has no proctrack/linuxproc plugin"
    select=select/linear
    if version_ge "$version" 19 5 && has_plugin select_cons_tres; then select=select/cons_tres; fi
    controller="SlurmctldHost=localhost(127.0.0.1)"
    if [ -n "$gres" ]; then gres_count="${gres#gpu:}"; fi
    mkdir -p "$out"
    {
        echo "# Written by scripts/slurm-cluster.sh for Slurm $version; \`start\` rewrites it."
        echo "ClusterName=$CLUSTER_NAME"
        echo "$controller"
        echo "SlurmctldPort=$CTLD_PORT"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "AuthType=auth/none"
        echo "CredType=cred/none"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        echo "JobCompType=jobcomp/none"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "MpiDefault=none"
        echo "SelectType=$select"
        [ "$select" = select/linear ] || echo "SelectTypeParameters=CR_CPU"
        echo "StateSaveLocation=$root/state"
        echo "SlurmdSpoolDir=$root/spool/%n"
        echo "SlurmctldPidFile=$root/run/slurmctld.pid"
        echo "SlurmdPidFile=$root/run/slurmd-%n.pid"
        echo "SlurmctldLogFile=$root/log/slurmctld.log"
        echo "SlurmdLogFile=$root/log/slurmd-%n.log"
        echo "MailProg=/bin/true"
        echo "SlurmctldDebug=info"
        echo "SlurmdDebug=info"
        echo "PlugStackConfig=$root/etc/plugstack.conf"
        # the node's declared CPUs and memory, not the host's (two nodes share one host)
        echo "SlurmdParameters=config_overrides"
        echo "ReturnToService=2"
        echo "SlurmdTimeout=$SLURMD_TIMEOUT_S"
        echo "MessageTimeout=$MESSAGE_TIMEOUT_S"
        echo "SlurmctldTimeout=30"
        echo "KillWait=$KILL_WAIT_S"
        echo "InactiveLimit=0"
        echo "Waittime=0"
        echo "MinJobAge=60"
        # schedule a submitted batch job at once (about 1 s to RUNNING instead of about 2 s)
        echo "SchedulerParameters=batch_sched_delay=0"
        # only a job submitted with --requeue is requeued when its node dies
        echo "JobRequeue=0"
        [ -z "$gres_count" ] || echo "GresTypes=gpu"
        for node in "${NODES[@]}"; do
            line="NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(node_port "$node")"
            line+=" CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB State=UNKNOWN"
            [ -z "$gres_count" ] || line+=" Gres=gpu:$gres_count"
            echo "$line"
        done
        echo "PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP"
    } >"$out/slurm.conf"
    # empty: not the system's /etc/slurm/plugstack.conf (Slurm 22.05 needs no cgroup.conf with
    # proctrack/linuxproc and task/none)
    : >"$out/plugstack.conf"
    if [ -n "$gres_count" ]; then
        # Slurm drops a GPU without File= ("Removing file-less GPU"), Flags=CountOnly included, and
        # the node then registers INVAL: each fake GPU is a device file under <root>/dev
        files="$root/dev/gpu0"
        [ "$gres_count" = 1 ] || files="$root/dev/gpu[0-$((gres_count - 1))]"
        printf '%s\n' "# Written by scripts/slurm-cluster.sh: fake GPUs (character devices like /dev/null)." \
            "NodeName=$(IFS=,; echo "${NODES[*]}") Name=gpu File=$files" >"$out/gres.conf"
    else
        rm -f "$out/gres.conf"
    fi
}

# make_gpu_files N: <root>/dev/gpu0..N-1, character devices 1:3 (what /dev/null is), or plain files
# where mknod is refused (slurmd then logs "is not a valid character or block device" and goes on)
make_gpu_files() {
    local i
    rm -rf "${root:?}/dev"
    mkdir -p "$root/dev"
    for ((i = 0; i < $1; i++)); do
        mknod "$root/dev/gpu$i" c 1 3 2>/dev/null || : >"$root/dev/gpu$i"
    done
}

# --- queries --------------------------------------------------------------------------------------
ctld_up() { timeout "$QUERY_TIMEOUT_S" scontrol ping 2>/dev/null | grep -q 'is UP'; }
# node_state NODE: sinfo's long state (idle, idle*, down*, drained, mixed, allocated...)
node_state() {
    timeout "$QUERY_TIMEOUT_S" sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1 || true
}
node_field() {  # node_field NODE FIELD: one KEY=VALUE field of `scontrol show node`
    timeout "$QUERY_TIMEOUT_S" scontrol -o show node "$1" 2>/dev/null \
        | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1 || true
}
node_ready() {  # answering and usable: not down, drained, failing or unknown
    case "$1" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

# log_reason FILE...: the last fatal line of the logs, else their last error line (without the
# noise every start logs), for a one-line message
log_reason() {
    local line
    line="$(cat "$@" 2>/dev/null | grep -E 'fatal:' | tail -n 1 || true)"
    [ -n "$line" ] || line="$(cat "$@" 2>/dev/null | grep -E 'error:' \
        | grep -vE 'NOTE: Trying backup|Could not open .* state file|pmix|MPI: Cannot create|MailProg' \
        | tail -n 1 || true)"
    line="${line#\[*\] }"
    echo "${line:-no reason in the log}"
}

# port_user PORT: who listens on the TCP port (empty when nobody does, or when ss is missing)
port_user() {
    command -v ss >/dev/null || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1 | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/\1/p;t;s/.*/a process/p'
}
check_port() {  # check_port PORT WHAT ENVVAR
    local user
    user="$(port_user "$1")"
    [ -z "$user" ] || die "port $1 ($2) is taken by $user: stop it or set $3"
}

log_tail() {  # log_tail FILE...: the last lines of each on stderr
    local file
    for file in "$@"; do
        [ -s "$file" ] || continue
        echo "---- $file (last 15 lines) ----" >&2
        tail -n 15 "$file" >&2
    done
}

# wait_nodes_ready DEADLINE NODE...: until each is ready; RESUME a node that its slurmd has
# registered but that stays DOWN or DRAINED; fix its GRES when slurmctld did not take it.
wait_nodes_ready() {
    local deadline="$1" node state pending resumed="" reason
    shift
    while :; do
        pending=()
        for node in "$@"; do
            state="$(node_state "$node")"
            if node_ready "$state"; then
                continue
            fi
            pending+=("$node:${state:-unknown}")
            case "$state" in
                down* | drain* | fail* | inval*)
                    # `*` = not answering yet: wait for its registration; otherwise set it back
                    if [[ "$state" != *"*" ]] && [[ " $resumed " != *" $node "* ]]; then
                        reason="$(node_field "$node" Reason)"
                        say "$node is $state${reason:+ ($reason)}: scontrol update State=RESUME"
                        timeout "$QUERY_TIMEOUT_S" scontrol update NodeName="$node" State=RESUME \
                            >/dev/null 2>&1 || true
                        resumed+=" $node"
                    fi
                    ;;
            esac
        done
        [ ${#pending[@]} -gt 0 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for node in "$@"; do log_tail "$root/log/slurmd-$node.log"; done
            log_tail "$root/log/slurmctld.log"
            die "nodes not idle after ${START_TIMEOUT_S}s: ${pending[*]}: $(log_reason "$root/log/slurmctld.log") (logs: $root/log)"
        fi
        sleep 0.5
    done
    [ -z "$gres" ] || for node in "$@"; do check_gres "$node"; done
}

# check_gres NODE: slurmctld's idea of the node's Gres against the configured one
check_gres() {
    local node="$1" want="$gres" have
    have="$(node_field "$node" Gres)"
    [ "${have%%(*}" = "$want" ] && return 0
    say "$node: slurmctld has Gres=${have:-none}, configured $want: scontrol update Gres=$want"
    timeout "$QUERY_TIMEOUT_S" scontrol update NodeName="$node" Gres="$want" >/dev/null 2>&1 || true
    have="$(node_field "$node" Gres)"
    [ "${have%%(*}" = "$want" ] || die "$node: Gres is ${have:-none} after scontrol update, not $want"
}

# --- daemons --------------------------------------------------------------------------------------
start_ctld() {
    local pid deadline
    check_port "$CTLD_PORT" slurmctld MLORCH_SLURM_CTLD_PORT
    # slurmctld forks into the background; its streams go to a file, never to our caller's pipes,
    # and it does not inherit the lock (fd 9)
    MLORCH_SLURM_ROOT="$root" setsid slurmctld -f "$conf" \
        </dev/null >>"$root/log/slurmctld.stderr" 2>&1 9>&- \
        || {
            log_tail "$root/log/slurmctld.stderr" "$root/log/slurmctld.log"
            die "slurmctld did not start: $(log_reason "$root/log/slurmctld.stderr" "$root/log/slurmctld.log") (log: $root/log/slurmctld.log)"
        }
    deadline=$((SECONDS + START_TIMEOUT_S))
    until ctld_up; do
        pid="$(daemon_pids slurmctld | head -n 1)"
        if [ -z "$pid" ] || [ "$SECONDS" -ge "$deadline" ]; then
            log_tail "$root/log/slurmctld.stderr" "$root/log/slurmctld.log"
            [ -n "$pid" ] || die "slurmctld exited at start: $(log_reason "$root/log/slurmctld.stderr" "$root/log/slurmctld.log") (log: $root/log/slurmctld.log)"
            die "slurmctld not answering after ${START_TIMEOUT_S}s (log: $root/log/slurmctld.log)"
        fi
        sleep 0.2
    done
}

# start_slurmd NODE: on an emptied spool, after any stray slurmstepd or task of the node is gone
start_slurmd() {
    local node="$1" deadline stray
    stray="$(daemon_pids slurmstepd "$node") $(job_pids "$node")"
    # shellcheck disable=SC2086
    kill_and_wait KILL "stray processes of $node" $stray
    rm -rf "${root:?}/spool/$node"
    mkdir -p "$root/spool/$node"
    rm -f "$root/run/slurmd-$node.pid"
    forget_lost_jobs "$node"
    check_port "$(node_port "$node")" "slurmd $node" MLORCH_SLURM_NODE_PORT_BASE
    MLORCH_SLURM_ROOT="$root" MLORCH_SLURM_NODE="$node" setsid slurmd -f "$conf" -N "$node" \
        </dev/null >>"$root/log/slurmd-$node.stderr" 2>&1 9>&- \
        || {
            log_tail "$root/log/slurmd-$node.stderr" "$root/log/slurmd-$node.log"
            die "slurmd $node did not start: $(log_reason "$root/log/slurmd-$node.stderr" "$root/log/slurmd-$node.log") (log: $root/log/slurmd-$node.log)"
        }
    deadline=$((SECONDS + 10))
    until [ -n "$(daemon_pids slurmd "$node")" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail "$root/log/slurmd-$node.stderr" "$root/log/slurmd-$node.log"
            die "slurmd $node exited at start: $(log_reason "$root/log/slurmd-$node.stderr" "$root/log/slurmd-$node.log") (log: $root/log/slurmd-$node.log)"
        fi
        sleep 0.1
    done
}

# forget_lost_jobs NODE: before a slurmd starts again. slurmctld that has not yet noticed the node's
# death still counts its jobs as running, and keeps counting them for about a minute after the new
# slurmd registers, so the node looks busy and new jobs on it stay PENDING (Resources). Those jobs
# died with the slurmd: mark the node DOWN now, which ends them (NODE_FAIL, or requeued under
# --requeue); the registration that follows brings it back (ReturnToService=2, RESUME otherwise).
forget_lost_jobs() {
    local node="$1" jobs
    ctld_up || return 0
    jobs="$(timeout "$QUERY_TIMEOUT_S" squeue -h -w "$node" -t RUNNING,COMPLETING,CONFIGURING,SUSPENDED \
        -o %i 2>/dev/null | tr '\n' ' ' || true)"
    [ -n "${jobs// /}" ] || return 0
    say "$node: slurmctld still counts jobs ${jobs% } on it: scontrol update State=DOWN (they died with its slurmd)"
    timeout "$QUERY_TIMEOUT_S" scontrol update NodeName="$node" State=DOWN \
        Reason="slurmd restarted by slurm-cluster.sh" >/dev/null 2>&1 || true
}

# stop_all: every process of this cluster. No grace: `start` begins from an empty state anyway, and
# slurmstepd ignores SIGTERM. The daemons are frozen (SIGSTOP) before anything dies, so none of
# them reacts to the others' death; then one SIGKILL for all.
stop_all() {
    local daemons ctld
    ctld="$(daemon_pids slurmctld | tr '\n' ' ')"
    # slurmctld's slurmscriptd helper re-executes itself with an environment of its own
    # shellcheck disable=SC2086
    daemons="$ctld $(descendants $ctld) $(daemon_pids slurmd) $(daemon_pids slurmstepd)"
    # shellcheck disable=SC2086
    [ -z "${daemons// /}" ] || kill -STOP $daemons 2>/dev/null || true
    daemons+=" $(job_pids | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill_and_wait KILL stop $daemons
    rm -f "$root"/run/*.pid
}

# --- commands -------------------------------------------------------------------------------------
need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (slurmd runs jobs as their users); run it with sudo"
}
take_lock() {
    mkdir -p "$root"
    exec 9>"$root/.lock"
    flock -w "$LOCK_TIMEOUT_S" 9 || die "another $PROG holds $root/.lock for over ${LOCK_TIMEOUT_S}s"
}
print_env() { echo "export SLURM_CONF=$conf"; }
same_config() {  # same_config DIR1 DIR2: slurm.conf and gres.conf (or its absence) alike
    cmp -s "$1/slurm.conf" "$2/slurm.conf" || return 1
    if [ -e "$1/gres.conf" ] || [ -e "$2/gres.conf" ]; then
        cmp -s "$1/gres.conf" "$2/gres.conf" || return 1
    fi
}

cmd_start() {
    local t0 version fresh=0 node deadline want log restarted=()
    t0="$(now)"
    need_root start
    mkdir -p "$root/log"
    ensure_installed
    take_lock
    version="$(slurm_version)"
    want="$(mktemp -d "${TMPDIR:-/tmp}/mlorch-slurm-conf.XXXXXX")"
    write_config "$want" "$version"
    if [ -n "$(daemon_pids slurmctld)" ] && ! same_config "$want" "$root/etc"; then
        say "the cluster under $root runs another configuration: restarting it"
    elif [ -n "$(daemon_pids slurmctld)" ] && ! ctld_up; then
        say "slurmctld under $root does not answer: restarting the cluster"
    fi
    if [ -n "$(daemon_pids slurmctld)" ] && same_config "$want" "$root/etc" && ctld_up; then
        rm -rf "$want"
    else
        fresh=1
        stop_all
        fail_cleanup=1
        rm -rf "${root:?}/state" "${root:?}/spool" "${root:?}/run" "${root:?}/etc"
        mkdir -p "$root/state" "$root/spool" "$root/run" "$root/log"
        mv "$want" "$root/etc"
        chmod 755 "$root/etc"
        if [ -n "$gres" ]; then make_gpu_files "${gres#gpu:}"; else rm -rf "${root:?}/dev"; fi
        for log in "$root"/log/*.log "$root"/log/*.stderr; do
            if [ -e "$log" ]; then mv -f "$log" "$log.1"; fi
        done
        start_ctld
    fi
    for node in "${NODES[@]}"; do
        [ -z "$(daemon_pids slurmd "$node")" ] || continue
        start_slurmd "$node"
        restarted+=("$node")
    done
    deadline=$((SECONDS + START_TIMEOUT_S))
    wait_nodes_ready "$deadline" "${NODES[@]}"
    fail_cleanup=0
    if [ "$fresh" = 1 ]; then
        say "Slurm $version: $CLUSTER_NAME up under $root in $(elapsed "$t0")s (nodes ${NODES[*]} idle)"
    else
        say "Slurm $version: $CLUSTER_NAME already up under $root${restarted[*]:+ (slurmd restarted: ${restarted[*]})}"
    fi
    print_env
}

cmd_stop() {
    local t0
    t0="$(now)"
    need_root stop
    [ -d "$root" ] || { say "nothing under $root"; return 0; }
    take_lock
    stop_all
    say "stopped $CLUSTER_NAME under $root in $(elapsed "$t0")s"
}

cmd_kill_node() {
    local node="$1" pids daemons killed
    need_root kill-node
    take_lock
    # Freeze the node's daemons first (SIGSTOP), then SIGKILL them with its tasks: a slurmstepd that
    # saw its task die before its own SIGKILL would report the job's end to slurmctld, which a dead
    # node never does.
    daemons="$(daemon_pids slurmd "$node") $(daemon_pids slurmstepd "$node")"
    # shellcheck disable=SC2086
    [ -z "${daemons// /}" ] || kill -STOP $daemons 2>/dev/null || true
    pids="$daemons $(job_pids "$node")"
    if [ -z "${pids// /}" ]; then
        say "$node: nothing running"
        return 0
    fi
    # shellcheck disable=SC2086
    kill_and_wait KILL "kill-node $node" $pids
    rm -f "$root/run/slurmd-$node.pid"
    read -ra killed <<<"$(tr '\n' ' ' <<<"$pids")"
    say "$node killed (pids ${killed[*]})"
}

cmd_start_node() {
    local t0 node="$1" deadline
    t0="$(now)"
    need_root start-node
    take_lock
    if [ ! -s "$conf" ] || [ -z "$(daemon_pids slurmctld)" ]; then
        die "the cluster under $root is not running: run start first"
    fi
    if [ -n "$(daemon_pids slurmd "$node")" ]; then
        say "$node: slurmd already running"
    else
        start_slurmd "$node"
    fi
    gres="$(sed -n 's/^NodeName=.* Gres=\([^ ]*\).*/\1/p' "$conf" | head -n 1)"
    deadline=$((SECONDS + START_TIMEOUT_S))
    wait_nodes_ready "$deadline" "$node"
    say "$node up in $(elapsed "$t0")s"
}

cmd_status() {
    local ok=0 pid node state
    [ "$(id -u)" -eq 0 ] || echo "(not root: the daemons' environments cannot be read, run it as root)"
    echo "root:   $root"
    echo "config: $conf"
    if command -v slurmctld >/dev/null; then echo "slurm:  $(slurm_version)"; else echo "slurm:  not installed"; ok=3; fi
    pid="$(daemon_pids slurmctld | head -n 1)"
    if [ -n "$pid" ] && ctld_up; then
        echo "slurmctld: running (pid $pid, port $CTLD_PORT)"
    else
        if [ -n "$pid" ]; then echo "slurmctld: not answering (pid $pid)"; else echo "slurmctld: not running"; fi
        ok=3
    fi
    for node in "${NODES[@]}"; do
        pid="$(daemon_pids slurmd "$node" | head -n 1)"
        state=""
        [ "$ok" = 3 ] || state="$(node_state "$node")"
        if [ -n "$pid" ]; then
            echo "$node: slurmd running (pid $pid, port $(node_port "$node"))${state:+, state $state}"
        else
            echo "$node: slurmd not running${state:+, state $state}"
        fi
        [ -n "$pid" ] || ok=3
    done
    if [ -n "$(daemon_pids slurmctld)" ]; then
        timeout "$QUERY_TIMEOUT_S" sinfo -N -o '%N %P %T %C %G %E' 2>&1 || true
        timeout "$QUERY_TIMEOUT_S" squeue -o '%i %j %T %N %r' 2>&1 || true
    fi
    return "$ok"
}

case "$command" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status)
        rc=0
        cmd_status || rc=$?
        exit "$rc"
        ;;
    env) print_env ;;
    kill-node | start-node)
        [ -n "$node_arg" ] || { say "error: $command needs a node: 1, 2, node1 or node2"; exit 2; }
        node="$(node_name "$node_arg")" \
            || { say "error: unknown node $node_arg (1, 2, node1 or node2)"; exit 2; }
        if [ "$command" = kill-node ]; then cmd_kill_node "$node"; else cmd_start_node "$node"; fi
        ;;
    *) say "error: unknown command $command (see --help)"; exit 2 ;;
esac
