#!/usr/bin/env bash
# kustomize, to render deploy/kubernetes/ in the tests exactly as `kubectl apply -k` and
# `kustomize build` do. Built from its Go module (the Go module proxy is a registry this
# project reaches; there is no kustomize in Debian 12) into the download cache, once.
#   kustomize.sh          install if missing, print the binary's path on the last line
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Pinned. v5.8.2 is the newest release whose go.mod accepts this machine's Go (1.26);
# v5.8.3 asks for Go 1.27.
KUSTOMIZE_VERSION=v5.8.2
KUSTOMIZE_HOME="$CACHE_DIR/kustomize-$KUSTOMIZE_VERSION"
KUSTOMIZE="$KUSTOMIZE_HOME/kustomize"

do_install() {
    if [[ -x $KUSTOMIZE && $("$KUSTOMIZE" version 2>/dev/null) == "$KUSTOMIZE_VERSION" ]]; then
        note "exists: $KUSTOMIZE ($KUSTOMIZE_VERSION)"
        return 0
    fi
    command -v go >/dev/null || die "go not found: kustomize is built from its Go module (Go >= 1.26 on PATH)"
    mkdir -p "$KUSTOMIZE_HOME"
    # GOTOOLCHAIN=local: fail clearly instead of fetching another Go; GOFLAGS: the image's
    # default -buildvcs=false is kept, and the module cache stays deletable.
    GOBIN="$KUSTOMIZE_HOME" GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -modcacherw" \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    [[ $("$KUSTOMIZE" version) == "$KUSTOMIZE_VERSION" ]] || die "$KUSTOMIZE does not report $KUSTOMIZE_VERSION"
    note "built $KUSTOMIZE ($KUSTOMIZE_VERSION, $(go version | cut -d' ' -f3))"
}

step "kustomize: $KUSTOMIZE_VERSION" do_install
echo "$KUSTOMIZE"
