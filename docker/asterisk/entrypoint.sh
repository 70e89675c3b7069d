#!/bin/sh
# Entrypoint of the Asterisk image: Asterisk of one vocalcast node, in the foreground.
#
# The image is the same root `vocalcast stack up` builds (Debian sid, engine/stack/root.py's packages,
# the asterisk user remapped to VOCALCAST_ASTERISK_UID); the config is the same too, rendered from
# dialplan/ by `vocalcast stack prepare` (the engine image, the compose's nodeN-prepare service) into the
# node's volume, mounted here at /srv/vocalcast. `stack up` runs Asterisk as `chroot <root> <command>`;
# here the image is the root, so the command runs as is: the line below is engine/stack/asterisk.py's
# command() (tests/unit/test_deploy.py checks that they stay the same).
set -eu
node=/srv/vocalcast
conf="$node/etc/asterisk.conf"
i=0
while [ ! -f "$conf" ]; do  # the prepare service writes it; compose starts us after it anyway
  i=$((i + 1))
  [ "$i" -le 60 ] || { echo "no $conf: run \`vocalcast stack prepare\` for this node" >&2; exit 1; }
  sleep 1
done
# The config names the node's directory as the engine sees it (/srv/vc-<id>, engine/media/paths.py):
# make that path this volume.
inst=$(sed -n 's/^astetcdir => \(\/srv\/[^ ]*\)\/etc.*/\1/p' "$conf")
[ -n "$inst" ] || { echo "no astetcdir in $conf" >&2; exit 1; }
[ "$inst" = "$node" ] || ln -sfn "$node" "$inst"
# Recordings and logs: Asterisk's group (the engine reads the recordings by it), nobody else (as `stack up`).
umask 007
exec /usr/sbin/asterisk -f -C "$inst/etc/asterisk.conf" -U asterisk -G asterisk
