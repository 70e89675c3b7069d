#!/bin/sh
# First start of the PostgreSQL volume (the official image runs /docker-entrypoint-initdb.d/*): the
# roles and database `vocalcast stack up` creates in its own cluster (engine/stack/postgres.py:
# ensure_roles). The migrations, and asterisk_cdr's INSERT grant, come from `vocalcast stack prepare`.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v engine_pw="$VOCALCAST_DB_PASSWORD" -v cdr_pw="$VOCALCAST_CDR_DB_PASSWORD" <<'SQL'
CREATE ROLE vocalcast LOGIN PASSWORD :'engine_pw';
CREATE ROLE asterisk_cdr LOGIN PASSWORD :'cdr_pw';
CREATE DATABASE vocalcast OWNER vocalcast ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE vocalcast FROM PUBLIC;
GRANT CONNECT ON DATABASE vocalcast TO vocalcast, asterisk_cdr;
SQL
