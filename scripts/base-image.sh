#!/usr/bin/env bash
# Builds localhost/homeport/python-base:bookworm offline (no registry is reachable here):
# Debian bookworm by debootstrap with Python 3 and the packages the example and test images
# use (Flask, gunicorn, scikit-learn, pandas, nginx), imported into Podman. About 80 s; skipped
# when the image is already present. Needs root, apt and CONTAINERS_CONF (scripts/podman.sh).
set -euo pipefail
IMAGE=${HOMEPORT_BASE_IMAGE:-localhost/homeport/python-base:bookworm}
# python3-venv and python3-pip let the built-in images install their own packages in a venv;
# gcc and python3-dev build the sdists some of them need (sagemaker-training's C shim).
PACKAGES=python3,python-is-python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev,python3-flask,gunicorn,python3-sklearn,python3-pandas,nginx-light,ca-certificates
# The host's CA bundle (it may hold a proxy's CA, as on CI machines): pip inside builds uses it.
HOST_CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
RECIPE=$( (cat "$0"; cat "$HOST_CA" 2>/dev/null) | sha256sum | cut -c1-16)
if podman image exists "$IMAGE"; then
  have=$(podman image inspect --format '{{ index .Labels "io.homeport.base.recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [[ "$have" == "$RECIPE" ]]; then
    echo "==> base image $IMAGE present"
    exit 0
  fi
  echo "==> base image $IMAGE comes from another recipe: rebuilding"
fi
command -v debootstrap >/dev/null || {
  echo "==> apt-get install debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
ROOTFS=$(mktemp -d /var/tmp/homeport-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "==> debootstrap bookworm ($PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
if [[ -f "$HOST_CA" ]]; then
  cp "$HOST_CA" "$ROOTFS/etc/ssl/certs/homeport-host-ca.crt"
else
  cp "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$ROOTFS/etc/ssl/certs/homeport-host-ca.crt"
fi
# Caches and docs are not needed at run time.
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc "$ROOTFS"/usr/share/man
echo "==> podman import $IMAGE"
tar -C "$ROOTFS" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/homeport-host-ca.crt' \
  --change "LABEL io.homeport.base.recipe=$RECIPE" - "$IMAGE" >/dev/null
echo "==> base image $IMAGE built"
