#!/bin/sh
# Runs the examples as a user would and checks both what they print and how they
# exit: the parent/child demo, then producer and consumer as separate processes with
# the consumer started first (it must sleep until the producer's segment appears).
set -eu
demo=$1
producer=$2
consumer=$3

output=$("$demo")
[ "$output" = "HelloWorld!" ] || { echo "demo printed: $output" >&2; exit 1; }

name="shmbox-example-$$"
output_file=$(mktemp)
trap 'rm -f "$output_file"' EXIT
"$consumer" "$name" >"$output_file" &
consumer_pid=$!
sleep 0.3
"$producer" "$name"
wait "$consumer_pid"
[ "$(cat "$output_file")" = "HelloWorld!" ] || { echo "consumer printed: $(cat "$output_file")" >&2; exit 1; }
echo "examples ok"
