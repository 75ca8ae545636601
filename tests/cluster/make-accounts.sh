#!/usr/bin/env bash
# make-accounts.sh - the workshop's Unix accounts on this machine, for the test cluster: one instructor and
# several students, unprivileged, each with a home of its own (mode 0750: other students cannot look in), all
# in one group. Idempotent (existing accounts are kept). Root only.
#
#   GROUP=ckworkshop  INSTRUCTOR=ckinstructor  STUDENTS="ckstudent1 ckstudent2 ckstudent3"  HOMES=/home
#
# Prints one line per account: NAME UID HOME.
set -euo pipefail
GROUP=${GROUP:-ckworkshop}
INSTRUCTOR=${INSTRUCTOR:-ckinstructor}
STUDENTS=${STUDENTS:-ckstudent1 ckstudent2 ckstudent3}
HOMES=${HOMES:-/home}

[ "$(id -u)" = 0 ] || { echo "make-accounts.sh: must run as root" >&2; exit 1; }
getent group "$GROUP" >/dev/null || groupadd "$GROUP"
mkdir -p "$HOMES"
for user in $INSTRUCTOR $STUDENTS; do
    if ! id -u "$user" >/dev/null 2>&1; then
        useradd --create-home --home-dir "$HOMES/$user" --shell /bin/bash --user-group --groups "$GROUP" "$user"
    fi
    usermod -a -G "$GROUP" "$user"
    home=$(getent passwd "$user" | cut -d: -f6)
    mkdir -p "$home"
    chown "$user:$user" "$home"
    chmod 0750 "$home"
    echo "$user $(id -u "$user") $home"
done
