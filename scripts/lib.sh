# Shared helpers for scripts/*. Source it; do not run it.

# apt_install PKG...: install the Debian packages that are missing, quietly; no-op when all are there.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_node: a Node.js >= 20 and npm first on PATH (mediasoup-client and playwright-core need
# it; Debian 12's apt nodejs is 18). Keeps `node` from PATH (Debian's when missing) when it is new
# enough; otherwise Node 22 and npm 10 from the npm registry (node-linux-<arch>: the official
# binary), fetched once with the old npm into ~/.cache/ferrosfu/node, whose bin dir goes first on
# PATH (exported: children such as the browser tests' `node` inherit it). Quiet when done.
node_min=20
node_cache="${XDG_CACHE_HOME:-$HOME/.cache}/ferrosfu/node"
node_major() { # node_major [NODE]: the major version of NODE (default: node on PATH), 0 if none
  local v
  v=$("${1:-node}" --version 2>/dev/null) || v=""
  v=${v#v}
  v=${v%%.*}
  if [[ "$v" =~ ^[0-9]+$ ]]; then echo "$v"; else echo 0; fi
}
node_ok() { [ "$(node_major)" -ge "$node_min" ] && command -v npm >/dev/null; }
ensure_node() {
  local bin="$node_cache/node_modules/.bin" arch
  node_ok && return 0
  if [ "$(node_major "$bin/node")" -lt "$node_min" ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
    node_ok && return 0
    case "$(uname -m)" in
      x86_64) arch=x64 ;;
      aarch64) arch=arm64 ;;
      *) echo "ensure_node: no Node.js package for $(uname -m) on npm" >&2; return 1 ;;
    esac
    echo "installing: Node.js 22 and npm 10 from the npm registry into $node_cache" \
      "(node on PATH: $(node --version 2>/dev/null || echo none))" >&2
    rm -rf "$node_cache.new"
    mkdir -p "$node_cache.new"
    (cd "$node_cache.new" && npm install --prefix . --no-save --no-package-lock --no-audit \
      --no-fund --loglevel=error "node-linux-$arch@22" npm@10 >/dev/null)
    if [ "$(node_major "$node_cache.new/node_modules/.bin/node")" -lt "$node_min" ]; then
      echo "ensure_node: the Node.js fetched into $node_cache.new does not run" >&2
      return 1
    fi
    rm -rf "$node_cache"
    mv "$node_cache.new" "$node_cache"
  fi
  [ "${PATH%%:*}" = "$bin" ] || export PATH="$bin:$PATH"
}
