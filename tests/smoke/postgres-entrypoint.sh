#!/bin/sh
# Stand-in for the official postgres image's entrypoint in the smoke run (no registry here: the image is
# Debian 12's postgresql-15 from an mmdebstrap tarball). Same contract as far as compose.yml uses it:
# POSTGRES_PASSWORD, /docker-entrypoint-initdb.d/*.sh on the first start, "$@" = `postgres -c ...`.
set -eu
export PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
mkdir -p "$PGDATA" /run/postgresql && chown postgres:postgres "$PGDATA" /run/postgresql && chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
  su postgres -c "initdb -U postgres --pwfile=/tmp/pw --auth-host=scram-sha-256 --auth-local=trust -D $PGDATA" >/dev/null
  rm -f /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  su postgres -c "pg_ctl -D $PGDATA -o '-c listen_addresses=' -w start" >/dev/null
  for script in /docker-entrypoint-initdb.d/*.sh; do
    POSTGRES_USER=postgres su postgres -p -c "sh $script"
  done
  su postgres -c "pg_ctl -D $PGDATA -m fast -w stop" >/dev/null
fi
shift  # "postgres"
exec su postgres -c "exec postgres -D $PGDATA $*"
