#!/usr/bin/env bash
# Builds localhost/homeport/python-base:bookworm offline (no registry is reachable here):
# Debian bookworm by debootstrap with Python 3 and the packages the example and test images
# use (Flask, gunicorn, scikit-learn, pandas, nginx), imported into Podman. About 80 s; skipped
# when the image is already present. Needs root, apt and CONTAINERS_CONF (scripts/podman.sh).
set -euo pipefail
IMAGE=${HOMEPORT_BASE_IMAGE:-localhost/homeport/python-base:bookworm}
PACKAGES=python3,python-is-python3,python3-flask,gunicorn,python3-sklearn,python3-pandas,nginx-light,ca-certificates
if podman image exists "$IMAGE"; then
  echo "==> base image $IMAGE present"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "==> apt-get install debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
ROOTFS=$(mktemp -d /var/tmp/homeport-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "==> debootstrap bookworm ($PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
# Caches, docs and headers are not needed at run time.
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc \
  "$ROOTFS"/usr/share/man "$ROOTFS"/usr/include
echo "==> podman import $IMAGE"
tar -C "$ROOTFS" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "==> base image $IMAGE built"
