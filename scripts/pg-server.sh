#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, in a folder of its own:
#
#   scripts/pg-server.sh start DIR   start one (a new cluster, or again on DIR's data and port after `halt`/`kill`);
#                                    prints its URL, postgres://flowstate@127.0.0.1:PORT/postgres, also in DIR/url
#   scripts/pg-server.sh stop DIR    stop it (fast: sessions are cut) and remove its data; nothing to do is fine
#   scripts/pg-server.sh halt DIR    stop it (fast), keep the data and the port for `start DIR`
#   scripts/pg-server.sh kill DIR    SIGKILL the postmaster and its processes (a crash); `start DIR` then recovers
#   scripts/pg-server.sh url DIR     print the URL again
#
# The superuser is `flowstate`, with trust authentication on 127.0.0.1 and on a Unix socket: DIR/url is the TCP
# URL, DIR/socket_url the socket's (postgres:///postgres?host=SOCKET_DIR&port=PORT&user=flowstate). fsync stays
# on: what the server reports as committed is on disk, as in production. The port is a free one picked at start.
# As root the server runs as the user `flowstate-pg` (created when missing; `nobody` if that fails), since
# PostgreSQL refuses to run as root. When that user cannot reach DIR (e.g. DIR is under /root), the data, the
# socket and the log live in a folder of /tmp instead, named in DIR/base; `stop` removes it.
#
# PostgreSQL's programs: FLOWSTATE_PG_BIN, else /usr/lib/postgresql/VERSION/bin (newest first), else PATH
# (`scripts/prereqs.sh postgres` installs them). Exit status 2 when they are missing.
set -euo pipefail

SUPERUSER=flowstate
PG_USER_NAME=flowstate-pg

die() {
  echo "pg-server: $*" >&2
  exit 1
}

usage() {
  sed -n '2,10p' "$0" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
DIR=$2
case "$cmd" in start | stop | halt | kill | url) ;; *) usage ;; esac

pg_bin_dir() {
  local dir
  local -a dirs
  if [ -n "${FLOWSTATE_PG_BIN:-}" ]; then
    dirs=("$FLOWSTATE_PG_BIN")
  else
    dirs=($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")")
  fi
  for dir in "${dirs[@]}"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return
    fi
  done
}

# as_pg CMD...: runs CMD as the server's user (as root: that user; otherwise: ourselves).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then
      runuser -u "$PG_USER" -- "$@"
    else
      setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups -- "$@"
    fi
  else
    "$@"
  fi
}

# The user the server runs as: ourselves, or as root `flowstate-pg` (created here when missing), else `nobody`.
pick_user() {
  if [ "$(id -u)" -ne 0 ]; then
    PG_USER="$(id -un)"
  elif id "$PG_USER_NAME" >/dev/null 2>&1; then
    PG_USER=$PG_USER_NAME
  elif useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    "$PG_USER_NAME" >/dev/null 2>&1 || id "$PG_USER_NAME" >/dev/null 2>&1; then
    PG_USER=$PG_USER_NAME
  else
    PG_USER=nobody
  fi
}

# A TCP port nothing listens on now (start retries with another one if the server still cannot bind it).
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "found no free TCP port on 127.0.0.1"
}

read_state() {
  BASE="$(cat "$DIR/base" 2>/dev/null || true)"
  PG_USER="$(cat "$DIR/user" 2>/dev/null || true)"
  DATA="$BASE/data"
}

postmaster_pid() {
  head -1 "$DATA/postmaster.pid" 2>/dev/null || true
}

write_urls() {
  local port=$1
  echo "postgres://$SUPERUSER@127.0.0.1:$port/postgres" >"$DIR/url"
  echo "postgres:///postgres?host=$BASE/socket&port=$port&user=$SUPERUSER" >"$DIR/socket_url"
  echo "$port" >"$DIR/port"
}

# pg_start PORT: starts the server on DATA at PORT; returns non-zero (log kept) when it does not come up.
pg_start() {
  local port=$1
  sed -i "/^port = /d" "$DATA/postgresql.conf"
  echo "port = $port" >>"$DATA/postgresql.conf"
  as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$BASE/log" -w -t 30 -s >/dev/null 2>&1
}

start() {
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  local port tries
  if [ -f "$DIR/base" ] && [ -f "$DIR/port" ]; then
    read_state
    if [ -f "$DATA/PG_VERSION" ]; then
      port="$(cat "$DIR/port")"
      if as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
        cat "$DIR/url"
        return
      fi
      # Again on the same data and port (after `halt` or `kill`: crash recovery). After a SIGKILL the old
      # processes may take a moment to go; the port may be taken meanwhile by someone else: then fail.
      for tries in 1 2 3 4 5 6 7 8 9 10; do
        if pg_start "$port"; then
          cat "$DIR/url"
          return
        fi
        sleep 0.5
      done
      tail -n 20 "$BASE/log" >&2 || true
      die "the server in $DATA did not start again on port $port (log above: $BASE/log)"
    fi
  fi

  pick_user
  # The server's user must reach its data and socket: in DIR when it can, else in a folder of /tmp.
  if as_pg test -x "$DIR" 2>/dev/null && [ ${#DIR} -lt 70 ]; then
    BASE="$DIR/pg"
    rm -rf "$BASE"
    mkdir -m 700 "$BASE"
  else
    # /tmp itself (not TMPDIR, which may be private): mktemp's folder is then given to the server's user.
    BASE="$(mktemp -d /tmp/flowstate-pg.XXXXXX)"
  fi
  echo "$BASE" >"$DIR/base"
  echo "$PG_USER" >"$DIR/user"
  DATA="$BASE/data"
  mkdir -m 700 "$DATA"
  mkdir -m 755 "$BASE/socket"
  chmod 711 "$BASE"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$PG_USER:$(id -gn "$PG_USER")" "$BASE"
  fi
  # --no-sync: initdb's own flush of the new files is skipped (a throwaway cluster); the server keeps fsync on.
  if ! as_pg "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust --encoding=UTF8 --no-locale --no-sync \
    >"$BASE/initdb.log" 2>&1; then
    cat "$BASE/initdb.log" >&2
    die "initdb failed in $DATA (as $PG_USER)"
  fi
  cat >>"$DATA/postgresql.conf" <<EOF
# scripts/pg-server.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$BASE/socket'
fsync = on
max_connections = 300
dynamic_shared_memory_type = mmap
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
  for tries in 1 2 3 4 5; do
    port="$(free_port)"
    if pg_start "$port"; then
      write_urls "$port"
      cat "$DIR/url"
      return
    fi
    if ! grep -q -e 'could not bind' -e 'already in use' "$BASE/log" 2>/dev/null; then
      break
    fi
  done
  tail -n 20 "$BASE/log" >&2 || true
  die "the server in $DATA did not start (log above: $BASE/log)"
}

# halt_server: fast shutdown when it runs (sessions are cut, committed work is kept).
halt_server() {
  if [ -f "$DATA/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 -s >/dev/null 2>&1 || true
  fi
}

kill_server() {
  local pid children
  pid="$(postmaster_pid)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  children="$(ps -o pid= --ppid "$pid" || true)"
  # shellcheck disable=SC2086 # one pid a word
  kill -9 "$pid" $children 2>/dev/null || true
  for _ in $(seq 100); do
    # shellcheck disable=SC2086
    kill -0 "$pid" $children 2>/dev/null || return 0
    sleep 0.05
  done
}

BIN="$(pg_bin_dir)"
case "$cmd" in
start)
  if [ -z "$BIN" ]; then
    echo "pg-server: PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found: run \`bash scripts/prereqs.sh postgres\`" >&2
    exit 2
  fi
  start
  ;;
url)
  cat "$DIR/url" 2>/dev/null || die "no server was started in $DIR"
  ;;
halt | kill | stop)
  [ -f "$DIR/base" ] || exit 0
  DIR="$(cd "$DIR" && pwd)"
  read_state
  [ -n "$BASE" ] || exit 0
  if [ "$cmd" = kill ]; then
    kill_server
    exit 0
  fi
  if [ -n "$BIN" ]; then
    halt_server
  fi
  if [ "$cmd" = stop ]; then
    # Still running (pg_ctl missing or stuck): a crash is as good, the data goes anyway.
    kill_server
    rm -rf "$BASE"
    rm -f "$DIR/base" "$DIR/user" "$DIR/url" "$DIR/socket_url" "$DIR/port"
  fi
  ;;
esac
