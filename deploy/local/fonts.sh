#!/usr/bin/env bash
# What the monthly bulletin needs to render: CJK fonts (the bulletin is Chinese) and
# Debian's headless Chromium (HTML -> PDF and the PNG the tests look at).
#   fonts.sh
# Idempotent: installs only the packages that are missing, and touches nothing else.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# fonts-noto-cjk: Noto Sans/Serif CJK SC, so 区/医院 never fall back to tofu boxes.
# chromium: /usr/bin/chromium, used with --headless --print-to-pdf / --screenshot.
PACKAGES=(fonts-noto-cjk chromium)

do_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        note "already installed: ${PACKAGES[*]}"
        return 0
    fi
    ((EUID == 0)) || die "missing packages ${missing[*]}: run as root or apt-get install them"
    # A fresh machine has no (or stale) package lists: update once first.
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    note "installed ${missing[*]}"
}

do_check() {
    command -v chromium >/dev/null || die "chromium is not on PATH after the install"
    # fc-list comes with fontconfig, which chromium depends on.
    fc-list :lang=zh family | grep -q 'Noto Sans CJK' || die "no Noto Sans CJK font known to fontconfig"
    note "$(chromium --version 2>/dev/null || echo 'chromium (version unknown)'); Noto Sans CJK present"
}

step "fonts: fonts-noto-cjk and chromium" do_install
step "fonts: check chromium and CJK fonts" do_check
