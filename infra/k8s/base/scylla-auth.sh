#!/bin/bash
# Run by the scylla-auth Job (ScyllaDB image, which has cqlsh). Idempotent:
#   1. wait until CQL answers, with the chosen superuser password or the image default;
#   2. replace the default superuser password with the one from guardyn-scylla-superuser;
#   3. create (or update) the application role from guardyn-cql, allowed to create keyspaces
#      (it then owns the keyspace `deno task migrate` creates).
# Passwords never appear on a command line: cqlsh reads them from private files in /tmp.
set -euo pipefail

for name in CQL_HOST CQL_KEYSPACE CQL_USERNAME CQL_PASSWORD SUPERUSER_PASSWORD; do
  [[ -n "${!name:-}" ]] || { echo "scylla-auth: $name is not set" >&2; exit 1; }
done
# The values are spliced into CQL, so only plain characters pass.
[[ "$CQL_USERNAME" =~ ^[a-z][a-z0-9_]{0,47}$ ]] || { echo "scylla-auth: bad CQL_USERNAME" >&2; exit 1; }
[[ "$CQL_KEYSPACE" =~ ^[a-z][a-z0-9_]{0,47}$ ]] || { echo "scylla-auth: bad CQL_KEYSPACE" >&2; exit 1; }
for name in CQL_PASSWORD SUPERUSER_PASSWORD; do
  [[ "${!name}" =~ ^[A-Za-z0-9_-]{16,128}$ ]] ||
    { echo "scylla-auth: $name must be 16..128 chars of A-Za-z0-9_-" >&2; exit 1; }
done

umask 077
rc="$(mktemp /tmp/cqlshrc.XXXXXX)"
statement="$(mktemp /tmp/statement.XXXXXX)"
trap 'rm -f "$rc" "$statement"' EXIT
cql() { # cql PASSWORD STATEMENT
  printf '[authentication]\nusername = cassandra\npassword = %s\n' "$1" >"$rc"
  printf '%s;\n' "$2" >"$statement"
  cqlsh "$CQL_HOST" 9042 --cqlshrc="$rc" --request-timeout=30 -f "$statement"
}

password=""
for attempt in $(seq 1 90); do
  if cql "$SUPERUSER_PASSWORD" "SELECT release_version FROM system.local" >/dev/null 2>&1; then
    password="$SUPERUSER_PASSWORD"
    break
  fi
  if cql cassandra "SELECT release_version FROM system.local" >/dev/null 2>&1; then
    echo "scylla-auth: replacing the default superuser password"
    cql cassandra "ALTER ROLE cassandra WITH PASSWORD = '$SUPERUSER_PASSWORD'" >/dev/null
    password="$SUPERUSER_PASSWORD"
    break
  fi
  echo "scylla-auth: waiting for CQL on $CQL_HOST:9042 (attempt $attempt)"
  sleep 5
done
[[ -n "$password" ]] || { echo "scylla-auth: CQL never accepted a superuser login" >&2; exit 1; }

cql "$password" "CREATE ROLE IF NOT EXISTS $CQL_USERNAME WITH PASSWORD = '$CQL_PASSWORD' AND LOGIN = true" >/dev/null
cql "$password" "ALTER ROLE $CQL_USERNAME WITH PASSWORD = '$CQL_PASSWORD'" >/dev/null
cql "$password" "GRANT CREATE ON ALL KEYSPACES TO $CQL_USERNAME" >/dev/null
if cql "$password" "DESCRIBE KEYSPACE $CQL_KEYSPACE" >/dev/null 2>&1; then
  cql "$password" "GRANT ALL PERMISSIONS ON KEYSPACE $CQL_KEYSPACE TO $CQL_USERNAME" >/dev/null
fi
echo "scylla-auth: role $CQL_USERNAME is ready"
