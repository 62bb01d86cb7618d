#!/bin/sh
# Starts the consumer before the producer exists; the consumer must wait for it.
set -eu
producer=$1
consumer=$2
name="shmbox-example-$$"
"$consumer" "$name" &
consumer_pid=$!
sleep 0.3
"$producer" "$name"
wait "$consumer_pid"
