#!/bin/sh
# Waits until every migrate Job in a namespace has completed; stops at the first one that failed, naming it and
# showing the end of its log. Exit 0: all complete; 1: a Job failed; 2: usage; 3: none found; 4: timed out.
#
#   deploy/k8s/wait-for-migrations.sh NAMESPACE [TIMEOUT_SECONDS (default 900)]
#
# Why not `kubectl wait --for=condition=complete`: it cannot watch for Failed at the same time, so a failed Job
# (backoffLimit used up) held the release until the wait's own timeout, 15 minutes later, with no word of why.
set -eu

usage() {
  echo "usage: $0 NAMESPACE [TIMEOUT_SECONDS]" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
namespace=$1
timeout=${2:-900}
case $timeout in '' | *[!0-9]*) usage ;; esac
selector=app.kubernetes.io/component=migrate
interval=${MENTORLOOM_WAIT_INTERVAL:-5}
deadline=$(($(date +%s) + timeout))

while :; do
  waiting=""
  # One line per Job: its name, then its conditions as Type=Status (Complete=True, Failed=True, ...).
  if jobs=$(kubectl -n "$namespace" get job -l "$selector" \
    -o jsonpath='{range .items[*]}{.metadata.name}{range .status.conditions[*]}{" "}{.type}={.status}{end}{"\n"}{end}'); then
    if [ -z "$jobs" ]; then
      echo "no migrate Job in namespace $namespace: apply the pre-deploy stage first (deploy/README.md)" >&2
      exit 3
    fi
    # The here-document keeps the loop in this shell (a pipe would run it in a subshell, and its exit with it).
    while read -r name conditions; do
      [ -n "$name" ] || continue
      case " $conditions " in
        *" Failed=True "*)
          echo "migrate Job $name failed; the release stops here (the running pods keep the old code). Its log:" >&2
          kubectl -n "$namespace" logs "job/$name" --tail=40 >&2 || true
          exit 1
          ;;
        *" Complete=True "*) ;;
        *) waiting="$waiting $name" ;;
      esac
    done <<JOBS
$jobs
JOBS
    if [ -z "$waiting" ]; then
      echo "every migrate Job completed"
      exit 0
    fi
  else
    # An API hiccup during a release is not a failed migration: ask again until the deadline.
    waiting=" (the Jobs could not be listed)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "still not complete after $timeout s:$waiting" >&2
    exit 4
  fi
  sleep "$interval"
done
