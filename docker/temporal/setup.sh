#!/bin/sh
# One-shot (temporalio/admin-tools), once the server answers: create the namespace and register
# the custom search attributes the workflows set. Idempotent: creates only what is missing.
#
# SEARCH_ATTRIBUTES is "Name=Type ..." and comes from docker-compose.yml, where
# tests/test_compose.py checks it against payouts/temporal_server.py SEARCH_ATTRIBUTES.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:=default}" "${TEMPORAL_NAMESPACE_RETENTION:=720h}"
: "${SEARCH_ATTRIBUTES:?}"
export TEMPORAL_ADDRESS  # read by the temporal CLI

tries=0
until temporal operator cluster health 2>/dev/null | grep -q SERVING; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "Temporal at $TEMPORAL_ADDRESS is not serving" >&2; exit 1; }
    sleep 2
done

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $TEMPORAL_NAMESPACE exists"
else
    temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
        --retention "$TEMPORAL_NAMESPACE_RETENTION"
fi

# A new namespace reaches the server's namespace cache within seconds: wait for it.
tries=0
until existing=$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null); do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "namespace $TEMPORAL_NAMESPACE not served" >&2; exit 1; }
    sleep 2
done

for attribute in $SEARCH_ATTRIBUTES; do
    name=${attribute%%=*}
    type=${attribute#*=}
    if printf '%s\n' "$existing" | grep -qw "$name"; then
        echo "search attribute $name exists"
    else
        temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" \
            --name "$name" --type "$type"
    fi
done
echo "namespace $TEMPORAL_NAMESPACE ready"
