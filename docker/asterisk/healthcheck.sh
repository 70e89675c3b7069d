#!/bin/sh
# Healthy once Asterisk has fully booted (what `vocalcast stack up` waits for before it goes on).
exec /usr/sbin/asterisk -C /srv/vocalcast/etc/asterisk.conf -rx 'core waitfullybooted'
