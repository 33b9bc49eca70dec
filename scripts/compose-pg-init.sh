#!/bin/sh
# First start of the compose stack's PostgreSQL (run by the image's entrypoint as its superuser):
# the schema owner and the gateway's role, the database owned by the former. `gsl-gateway migrate`
# then creates the schema and grants gsl_gateway read and write on its tables.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres <<SQL
CREATE ROLE gsl_owner LOGIN PASSWORD '$PG_PW_OWNER';
CREATE ROLE gsl_gateway LOGIN PASSWORD '$PG_PW_GATEWAY';
CREATE DATABASE gsl OWNER gsl_owner;
REVOKE ALL ON DATABASE gsl FROM PUBLIC;
SQL
