#!/usr/bin/env bash
# Runs the clipboard example as a user would, as separate processes, and checks what it
# prints (byte for byte), what it says on stderr and how it exits.
set -euo pipefail
clip=$1

board="clipboard-test-$$"
work=$(mktemp -d)
watcher=""
cleanup() {
  if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; fi
  for suffix in "" -watch -skip -removed; do "$clip" --board "$board$suffix" clear || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "clipboard_demo: $*" >&2
  exit 1
}

# Runs the command with stdout and stderr to files and its exit code in $status.
run() {
  status=0
  "$@" >"$work/out" 2>"$work/err" || status=$?
}

expect_status() {
  [ "$status" -eq "$1" ] || fail "exit $status, not $1 (stderr: $(cat "$work/err"))"
}

# Compares byte for byte: $(...) would drop trailing newlines.
expect_file() {
  cmp -s "$1" "$2" || fail "$1 holds '$(od -c "$1" | head -5)', not '$(od -c "$2" | head -5)'"
}

expect_err() {
  printf '%s\n' "$1" >"$work/expected_err"
  expect_file "$work/err" "$work/expected_err"
}

# A watch starts after the clip current when it opened the board, so the test copies
# only once the watcher has the board mapped (nothing to sleep and hope for). The board's
# file is made unnamed and linked later, so /proc/PID/maps knows it by inode, not name.
wait_until_watching() {
  local inode
  for _ in $(seq 200); do
    if inode=$(stat -c %i "/dev/shm/shmbox.bd.$2" 2>/dev/null) &&
      awk -v inode="$inode" '$5 == inode && $6 ~ /^\/dev\/shm\// { found = 1 } END { exit !found }' \
        "/proc/$1/maps" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  fail "watch on $2 never opened it"
}

wait_for_file() {
  for _ in $(seq 200); do
    cmp -s "$1" "$2" && return 0
    sleep 0.05
  done
  fail "$1 never came to hold what $2 does"
}

# copy TEXT, then paste: exactly the text, no newline added.
run "$clip" --board "$board" copy "hello, world"
expect_status 0
[ ! -s "$work/err" ] || fail "copy printed: $(cat "$work/err")"
run "$clip" --board "$board" paste
expect_status 0
printf 'hello, world' >"$work/expected"
expect_file "$work/out" "$work/expected"

# From standard input: a trailing newline kept, none added; binary bytes (NUL, 0xff, CR)
# pass through untouched.
printf 'two lines\nend\n' >"$work/text"
"$clip" --board "$board" copy <"$work/text"
"$clip" --board "$board" paste >"$work/out"
expect_file "$work/out" "$work/text"
printf '\000\001\377\r\n\000tail' >"$work/binary"
"$clip" --board "$board" copy <"$work/binary"
"$clip" --board "$board" paste >"$work/out"
expect_file "$work/out" "$work/binary"
# A text that starts with a dash, after --.
"$clip" --board "$board" copy -- --not-an-option
[ "$("$clip" --board "$board" paste)" = "--not-an-option" ] || fail "-- was not honoured"

# Over the board's 1 MiB: refused whole, and the previous clip stays.
head -c $((1024 * 1024 + 1)) /dev/zero >"$work/huge"
run "$clip" --board "$board" copy <"$work/huge"
expect_status 65
grep -q "^clipboard: board '$board': " "$work/err" || fail "too large said: $(cat "$work/err")"
[ "$("$clip" --board "$board" paste)" = "--not-an-option" ] || fail "a refused copy changed the clip"

# A watch started first sees the next two copies, one per line, then exits by itself.
# Until the first copy the board is empty: paste prints nothing and succeeds.
"$clip" --board "$board-watch" watch --count 2 >"$work/watched" 2>"$work/watch_err" &
watcher=$!
wait_until_watching "$watcher" "$board-watch"
run "$clip" --board "$board-watch" paste
expect_status 0
[ ! -s "$work/out" ] || fail "paste of an empty board printed: $(cat "$work/out")"
"$clip" --board "$board-watch" copy one
printf 'one\n' >"$work/expected"
wait_for_file "$work/watched" "$work/expected"  # so that "two" cannot replace it unseen
"$clip" --board "$board-watch" copy two
watch_status=0
wait "$watcher" || watch_status=$?
watcher=""
[ "$watch_status" -eq 0 ] || fail "watch exited $watch_status: $(cat "$work/watch_err")"
printf 'one\ntwo\n' >"$work/expected"
expect_file "$work/watched" "$work/expected"
[ ! -s "$work/watch_err" ] || fail "watch said: $(cat "$work/watch_err")"

# A watcher that falls behind gets the latest clip and is told what it missed.
"$clip" --board "$board-skip" watch --count 1 >"$work/watched" 2>"$work/watch_err" &
watcher=$!
wait_until_watching "$watcher" "$board-skip"
kill -STOP "$watcher"
"$clip" --board "$board-skip" copy first
"$clip" --board "$board-skip" copy second
kill -CONT "$watcher"
wait "$watcher" || fail "a skipping watch failed: $(cat "$work/watch_err")"
watcher=""
printf 'second\n' >"$work/expected"
expect_file "$work/watched" "$work/expected"
printf 'clipboard: skipped 1 clip(s), replaced before they could be printed\n' >"$work/expected"
expect_file "$work/watch_err" "$work/expected"

# clear stops a watcher: it says why and exits 69 (EX_UNAVAILABLE).
"$clip" --board "$board-removed" watch >"$work/watched" 2>"$work/watch_err" &
watcher=$!
wait_until_watching "$watcher" "$board-removed"
"$clip" --board "$board-removed" clear
watch_status=0
wait "$watcher" || watch_status=$?
watcher=""
[ "$watch_status" -eq 69 ] || fail "a watch of a cleared board exited $watch_status"
printf "clipboard: board '%s': was removed\n" "$board-removed" >"$work/expected"
expect_file "$work/watch_err" "$work/expected"

# After clear, paste fails with one line naming the board and exits 66 (EX_NOINPUT);
# a second clear is no error.
"$clip" --board "$board" clear
run "$clip" --board "$board" paste
expect_status 66
[ ! -s "$work/out" ] || fail "paste of a cleared board printed: $(cat "$work/out")"
expect_err "clipboard: board '$board': cannot open: does not exist (No such file or directory)"
run "$clip" --board "$board" clear
expect_status 0

# Usage errors exit 64 (EX_USAGE) and say what was wrong first.
for args in "bogus" "paste extra" "copy a b" "watch --count 0" "paste --count 2" "--board"; do
  # shellcheck disable=SC2086  # split on purpose
  run "$clip" $args
  expect_status 64
  grep -q "^clipboard: " "$work/err" || fail "'$args' said: $(cat "$work/err")"
done
run "$clip" --board "bad/name" paste
expect_status 64

echo "clipboard example ok"
