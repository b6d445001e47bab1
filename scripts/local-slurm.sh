#!/usr/bin/env bash
# A single-node SLURM on this machine, for trying ddsp-lab's cluster path on a laptop (and for the
# test suite's tests/cluster/): munge and SLURM (Debian's munge and slurm-wlm, 22.05 or newer) with
# their configuration, keys, logs and state in one folder, so the machine's own /etc/slurm is not
# touched.
#
#   bash scripts/local-slurm.sh up        # install (as root, with apt) if missing; start munged, slurmctld, slurmd
#   eval "$(bash scripts/local-slurm.sh env)"   # SLURM_CONF for sbatch/squeue/srun in this shell
#   bash scripts/local-slurm.sh status    # the daemons and the node, as sinfo sees it
#   bash scripts/local-slurm.sh down      # stop the daemons (the folder stays; `down --purge` removes it)
#
# Environment: DDSP_LAB_SLURM_DIR (default ~/.cache/ddsp-lab/slurm), DDSP_LAB_SLURM_PORT (the
# controller's port, default 6817; slurmd takes the next), DDSP_LAB_SLURM_KILL_WAIT (seconds between
# a job's SIGTERM and its SIGKILL, default 30). The daemons run as the user who starts them; root
# is what a normal SLURM needs to run jobs as other users, and what `up` needs to apt-get install.
set -euo pipefail

dir="${DDSP_LAB_SLURM_DIR:-${HOME:-/tmp}/.cache/ddsp-lab/slurm}"
port="${DDSP_LAB_SLURM_PORT:-6817}"
kill_wait="${DDSP_LAB_SLURM_KILL_WAIT:-30}"
conf="$dir/slurm.conf"
socket="$dir/munge/munge.socket"

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 \
    && command -v sbatch >/dev/null 2>&1 && return 0
  [[ "$(id -u)" == "0" ]] || die "slurmctld, slurmd, munged and sbatch are not installed, and installing them needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null 2>&1 || die "slurmctld, slurmd, munged and sbatch are not installed, and this machine has no apt-get (install SLURM 22.05+ and munge)"
  say "installing slurm-wlm and munge (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge) \
    >"${TMPDIR:-/tmp}/local-slurm-apt.log" 2>&1 \
    || die "apt-get install slurm-wlm munge failed (log: ${TMPDIR:-/tmp}/local-slurm-apt.log)"
}

running() {  # running <name>: the pid file's process is alive
  local pid_file="$dir/$1.pid"
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file" 2>/dev/null)" 2>/dev/null  # (munged removes its pid file as it exits)
}

write_config() {
  local host cpus mem_mb user
  host="$(hostname -s)"
  cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc alone honours OMP_NUM_THREADS
  # what slurmd may hand out: 90 % of the memory, in MB
  mem_mb="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
  user="$(id -un)"
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 700 "$dir/munge"
  cat >"$conf" <<EOF
# Written by scripts/local-slurm.sh: one node, this machine, everything under $dir.
ClusterName=ddsp-lab-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no slurmdbd: sacct has nothing to read (submitit falls back to squeue/scontrol)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=$kill_wait
Waittime=0
DefMemPerCPU=$((mem_mb / cpus))
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  if [[ ! -f "$dir/munge/munge.key" ]]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
  fi
}

up() {
  install_packages
  write_config
  if ! running munged; then
    munged --force --socket="$socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/munged.pid" \
      --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
      || die "munged did not start (log: $dir/log/munged.log)"
  fi
  if ! running slurmctld; then
    slurmctld -f "$conf" || die "slurmctld did not start (log: $dir/log/slurmctld.log)"
  fi
  export SLURM_CONF="$conf"
  for _ in $(seq 50); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
  scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer (log: $dir/log/slurmctld.log)"
  if ! running slurmd; then
    slurmd -f "$conf" || die "slurmd did not start (log: $dir/log/slurmd.log)"
  fi
  local state=""
  for _ in $(seq 100); do
    state="$(sinfo -h -N -o '%t' 2>/dev/null | head -1)"
    [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]] && break
    sleep 0.2
  done
  [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]] \
    || die "the node did not come up (state '$state'; logs in $dir/log)"
  say "up: node $(hostname -s), $(awk "/^NodeName/ {print \$3}" "$conf" | cut -d= -f2) CPUs, partition debug; configuration $conf"
  say "run this in your shell:  export SLURM_CONF=$conf"
}

down() {
  export SLURM_CONF="$conf"
  if running slurmctld; then scancel --full --user="$(id -un)" >/dev/null 2>&1 || true; fi
  for name in slurmd slurmctld munged; do
    if running "$name"; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      for _ in $(seq 50); do running "$name" || break; sleep 0.1; done
      running "$name" && kill -9 "$(cat "$dir/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
  say "down"
  if [[ "${1:-}" == "--purge" ]]; then rm -rf "$dir"; say "removed $dir"; fi
}

status() {
  local name
  for name in munged slurmctld slurmd; do
    if running "$name"; then say "$name running (pid $(cat "$dir/$name.pid"))"; else say "$name not running"; fi
  done
  if running slurmctld; then SLURM_CONF="$conf" sinfo -N -l; fi
  running munged && running slurmctld && running slurmd
}

case "${1:-}" in
  up) up ;;
  down) down "${2:-}" ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) echo "usage: bash scripts/local-slurm.sh up|down [--purge]|status|env" >&2; exit 2 ;;
esac
