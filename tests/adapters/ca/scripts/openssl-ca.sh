#!/bin/sh
# A real `openssl ca` behind the cucm-renew command-CA contract (see adapters/ca/command.py).
#
# CA_DIR holds openssl.cnf, intermediate.pem/.key (the signer), root.pem and spool/.
# APPROVAL=1 makes every request wait for a person: it is signed only once the file
# spool/<token>.approved exists (spool/<token>.rejected holds a refusal instead).
# keys/<idempotency key> holds the token of the request that key named: a submit with a key seen
# before answers what that request produced (the certificate issued then, or the same token while
# it waits) instead of signing the CSR a second time. IGNORE_KEY=1 forgets the contract (for tests).
set -u
dir="${CA_DIR:?CA_DIR is not set}"
spool="$dir/spool"
keys="$dir/keys"

# openssl ca keeps a text database that two runs must not write at once.
exec 9>"$dir/lock"
flock 9

sign() {  # $1 = token
    if [ ! -f "$spool/$1.pem" ]; then
        type=$(cat "$spool/$1.type")
        if ! openssl ca -batch -config "$dir/openssl.cnf" -extensions "ext_$type" -preserveDN -notext \
                -in "$spool/$1.csr" -out "$spool/$1.tmp" 2>"$spool/$1.err"; then
            grep -v '^Using configuration' "$spool/$1.err" >&2
            rm -f "$spool/$1.tmp"
            exit 2
        fi
        mv "$spool/$1.tmp" "$spool/$1.pem"
    fi
    cat "$spool/$1.pem" "$dir/intermediate.pem" "$dir/root.pem"
    exit 0
}

case "${1:-submit}" in
submit)
    if [ -f "$dir/down" ]; then echo "CA service is down for maintenance" >&2; exit 3; fi
    case "${CUCM_RENEW_CERT_TYPE:-}" in
        tomcat|CallManager|TVS|ipsec|CAPF) ;;
        *) echo "no certificate template for type '${CUCM_RENEW_CERT_TYPE:-}'" >&2; exit 4 ;;
    esac
    key="${CUCM_RENEW_IDEMPOTENCY_KEY:-}"
    case "$key" in *[!A-Za-z0-9_-]*) echo "malformed idempotency key" >&2; exit 4 ;; esac
    [ "${IGNORE_KEY:-0}" = 1 ] && key=""
    if [ -n "$key" ] && [ -f "$keys/$key" ]; then
        token=$(cat "$keys/$key")
        if [ -f "$spool/$token.rejected" ]; then cat "$spool/$token.rejected" >&2; exit 2; fi
        if [ -f "$spool/$token.pem" ] || [ -f "$spool/$token.approved" ] || [ "${APPROVAL:-0}" != 1 ]; then
            sign "$token"
        fi
        echo "$token"; exit 1
    fi
    token="req-$(date +%s%N)-$$"
    cat > "$spool/$token.csr"
    echo "$CUCM_RENEW_CERT_TYPE" > "$spool/$token.type"
    if [ -n "$key" ]; then
        # Recorded before signing: a request whose signature failed is retried under its token.
        mkdir -p "$keys"
        echo "$token" > "$keys/$key.tmp" && mv "$keys/$key.tmp" "$keys/$key"
    fi
    if [ "${APPROVAL:-0}" = 1 ]; then echo "$token"; exit 1; fi
    sign "$token"
    ;;
poll)
    token="${CUCM_RENEW_TOKEN:?}"
    case "$token" in *[!A-Za-z0-9-]*) echo "malformed token" >&2; exit 2 ;; esac
    if [ ! -f "$spool/$token.csr" ]; then echo "unknown request $token" >&2; exit 2; fi
    if [ -f "$spool/$token.rejected" ]; then cat "$spool/$token.rejected" >&2; exit 2; fi
    if [ ! -f "$spool/$token.approved" ]; then echo 30; exit 5; fi
    sign "$token"
    ;;
*)
    echo "unknown operation $1" >&2
    exit 4
    ;;
esac
