#!/usr/bin/env bash
# Put the Developer ID certificate into a temporary keychain so codesign can use it (the release
# workflow runs this only when the signing secrets are set). By hand on a Mac with the
# certificate already in your login keychain you do not need this: just set CODESIGN_IDENTITY.
#
# Environment: MACOS_CERTIFICATE_P12 (base64 of the .p12), MACOS_CERTIFICATE_PASSWORD,
#              KEYCHAIN_PASSWORD (any string: protects the temporary keychain)
set -euo pipefail
: "${MACOS_CERTIFICATE_P12:?base64 of the Developer ID Application .p12}"
: "${MACOS_CERTIFICATE_PASSWORD:?the .p12 password}"
KEYCHAIN="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/corral-signing.keychain-db"
KEYCHAIN_PASSWORD="${KEYCHAIN_PASSWORD:-$(uuidgen)}"
P12="$(mktemp)"
trap 'rm -f "$P12"' EXIT
printf '%s' "$MACOS_CERTIFICATE_P12" | base64 --decode > "$P12"
security create-keychain -p "$KEYCHAIN_PASSWORD" "$KEYCHAIN"
security set-keychain-settings -lut 21600 "$KEYCHAIN"
security unlock-keychain -p "$KEYCHAIN_PASSWORD" "$KEYCHAIN"
security import "$P12" -P "$MACOS_CERTIFICATE_PASSWORD" -A -t cert -f pkcs12 -k "$KEYCHAIN"
security set-key-partition-list -S apple-tool:,apple: -k "$KEYCHAIN_PASSWORD" "$KEYCHAIN" >/dev/null
# shellcheck disable=SC2046  # the existing keychains, one per line, become arguments
security list-keychains -d user -s "$KEYCHAIN" $(security list-keychains -d user | tr -d '"')
security find-identity -v -p codesigning "$KEYCHAIN"
