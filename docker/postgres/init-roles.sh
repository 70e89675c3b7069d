#!/bin/sh
# First start of the PostgreSQL volume (the official image runs /docker-entrypoint-initdb.d/*): the
# roles and database `vocalcast stack up` creates in its own cluster (engine/stack/postgres.py:
# ensure_roles). The migrations, asterisk_cdr's INSERT grant and vocalcast_edge's SELECT on the nodes table
# (the Kamailio edge's fence check) come from `vocalcast stack prepare`.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v engine_pw="$VOCALCAST_DB_PASSWORD" -v cdr_pw="$VOCALCAST_CDR_DB_PASSWORD" \
  -v edge_pw="$VOCALCAST_EDGE_DB_PASSWORD" <<'SQL'
CREATE ROLE vocalcast LOGIN PASSWORD :'engine_pw';
CREATE ROLE asterisk_cdr LOGIN PASSWORD :'cdr_pw';
CREATE ROLE vocalcast_edge LOGIN PASSWORD :'edge_pw';
CREATE DATABASE vocalcast OWNER vocalcast ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE vocalcast FROM PUBLIC;
GRANT CONNECT ON DATABASE vocalcast TO vocalcast, asterisk_cdr, vocalcast_edge;
SQL
