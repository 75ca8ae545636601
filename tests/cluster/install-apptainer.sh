#!/usr/bin/env bash
# install-apptainer.sh - EXPERIMENTAL: get a working Apptainer on Debian bookworm
# from Debian's own archive only (no GitHub, no Go toolchain).
#
# Bookworm has no apptainer/singularity-container package. Debian sid has
# apptainer 1.4.5-2, but it needs libc6 >= 2.38 (bookworm: 2.36). So:
#   * download apptainer (sid) and libc6 (trixie, 2.41) .debs with a private apt
#     config (the system's sources.list is not touched),
#   * unpack both into $PREFIX (apptainer is relocatable: it finds its config
#     under $PREFIX/usr/etc and libexec relative to the binary),
#   * patchelf the two ELF binaries (apptainer, starter) onto the private glibc,
#   * work around this sandbox's missing CAP_SYS_RESOURCE in the bounding set:
#     'root default capabilities = file' + capability.json granting root every
#     capability that IS in the bounding set,
#   * give root a subuid/subgid range so 'build --fakeroot' works.
# Used by the kit's tests (tests/test_containers_build.py) and .ci/run.
# Result: apptainer build --fakeroot (debootstrap, localimage), exec, run, test
# all work as root. Plain 'apptainer build' (no --fakeroot) does NOT (its %post
# always asks for the full capability set).
#
#   PREFIX=/tmp/coursekit-slurm/apptainer   afterwards: export PATH=$PREFIX/usr/bin:$PATH
set -euo pipefail
PREFIX=${PREFIX:-/tmp/coursekit-slurm/apptainer}
WORK=${WORK:-/tmp/coursekit-slurm/aptalt}
log() { printf '[install-apptainer] %s\n' "$*" >&2; }

if [ -x "$PREFIX/usr/bin/apptainer" ] && "$PREFIX/usr/bin/apptainer" version >/dev/null 2>&1; then
    log "already installed: $("$PREFIX/usr/bin/apptainer" version)"; exit 0
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in squashfs-tools uidmap debootstrap patchelf containernetworking-plugins ca-certificates libcap2-bin libseccomp2 libsqlite3-0; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# private apt config for trixie + sid (download only)
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
# the same Debian mirror the system already uses, for the newer suites
MIRROR=$(grep -hoE '^(URIs:|deb) *[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
         | awk '{print $2}' | grep -v security | head -1 || true)
[ -n "$MIRROR" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
printf 'deb %s trixie main\ndeb %s sid main\n' "$MIRROR" "$MIRROR" > "$WORK/sources.list"
APTO=(-o Dir::Etc::SourceList="$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$WORK/lists" -o Dir::Cache="$WORK/cache"
      -o APT::Sandbox::User=root)
apt-get "${APTO[@]}" update -qq
( cd "$WORK" && rm -f apptainer_*.deb libc6_*.deb &&
  apt-get "${APTO[@]}" download apptainer/sid libc6/trixie >/dev/null )
log "downloaded: $(cd "$WORK" && ls apptainer_*.deb libc6_*.deb | tr '\n' ' ')"

rm -rf "$PREFIX"; mkdir -p "$PREFIX/glibc"
dpkg-deb -x "$WORK"/libc6_*.deb "$PREFIX/glibc"
dpkg-deb -x "$WORK"/apptainer_*.deb "$PREFIX"
mv "$PREFIX/etc" "$PREFIX/usr/etc"                  # relocated SYSCONFDIR
ln -s ../etc "$PREFIX/usr/lib/etc"                  # some code paths resolve from libexec
ln -s ../var "$PREFIX/usr/lib/var"
mkdir -p "$PREFIX/usr/var/lib/apptainer/mnt/session"

G=$PREFIX/glibc/usr/lib/x86_64-linux-gnu
for b in "$PREFIX/usr/bin/apptainer" "$PREFIX/usr/lib/x86_64-linux-gnu/apptainer/bin/starter"; do
    patchelf --set-interpreter "$G/ld-linux-x86-64.so.2" \
             --set-rpath "$G:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu" --force-rpath "$b"
done
A=$PREFIX/usr/bin/apptainer

# capabilities: only those present in our bounding set
conf=$PREFIX/usr/etc/apptainer/apptainer.conf
sed -i 's/^root default capabilities = full/root default capabilities = file/' "$conf"
bnd=$(awk '/^CapBnd/{print $2}' /proc/self/status)
have=$(capsh --decode="0x$bnd" | sed 's/.*=//' | tr 'a-z,' 'A-Z\n')
caps=$("$A" capability avail 2>/dev/null | grep -oE '^CAP_[A-Z_]+' | grep -xF "$have" | paste -sd,)
"$A" capability add --user root "$caps" 2>/dev/null
lacking=$("$A" capability avail 2>/dev/null | grep -oE '^CAP_[A-Z_]+' | grep -vxF "$have" | paste -sd, || true)
log "root capabilities granted: all but [${lacking:-none}]"

# fakeroot needs a subordinate id range for root
for f in /etc/subuid /etc/subgid; do
    grep -q '^root:' "$f" 2>/dev/null || echo 'root:100000:65536' >> "$f"
done

log "ok: $("$A" version)  ->  export PATH=$PREFIX/usr/bin:\$PATH"
