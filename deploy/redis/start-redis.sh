#!/bin/sh
# Starts redis-server for docker-compose.yml with its password in a 0600 config file, never on
# a command line (`ps`, `docker top` and /proc show command lines to anyone on the host).
#
#   STREAMREC_REDIS_PASSWORD  the default user's password (requirepass); empty: none
#   REDIS_CONF                where the config goes (default /tmp/redis.conf, inside the container)
#   REDIS_PORT, REDIS_DATA    port (6379) and data folder (/data)
#   REDIS_BIND                addresses to listen on (default: every interface of the container)
#
# The password reaches redis-server only through the file; it is removed from the environment
# before redis-server starts. tests/unit/test_deploy_files.py runs this script.
set -eu
conf="${REDIS_CONF:-/tmp/redis.conf}"
umask 077
{
  printf 'port %s\n' "${REDIS_PORT:-6379}"
  printf 'dir %s\n' "${REDIS_DATA:-/data}"
  if [ -n "${REDIS_BIND:-}" ]; then printf 'bind %s\n' "$REDIS_BIND"; fi
  printf 'appendonly yes\nappendfsync everysec\n'
  if [ -n "${STREAMREC_REDIS_PASSWORD:-}" ]; then
    # printf is a shell builtin and sed reads the password on stdin: no command line carries it.
    escaped=$(printf '%s' "$STREAMREC_REDIS_PASSWORD" | sed 's/[\\"]/\\&/g')
    printf 'requirepass "%s"\n' "$escaped"
  fi
} > "$conf"
unset STREAMREC_REDIS_PASSWORD escaped
# The official image starts redis-server as user redis (docker-entrypoint.sh): let it read the file.
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then chown redis "$conf"; fi
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
  exec docker-entrypoint.sh redis-server "$conf"
fi
exec redis-server "$conf"
