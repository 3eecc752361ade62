#!/usr/bin/env bash
# A screenshot of the VS Code extension from a real run: code-server (VS Code in the browser)
# with the extension packaged from editor_clients/vscode and the real Python server from the
# repository's .venv, driven by headless Chromium (puppeteer-core): the file opened, the cursor
# put at the end of a line, an inline suggestion asked for (Trigger Inline Suggestion), the
# window saved as PNG once the ghost text is on screen.
#
#   editor_clients/screenshots/vscode.sh [OUT.png] [FILE] [LINE]
#
# Defaults: vscode.png beside this script; diffusion/bench_input.py, line 294 (the blank body
# of `newest`); for another FILE, its first blank indented line. The file is copied into a temporary workspace; nothing in the repository moves.
# code-server, puppeteer-core and vsce are installed from npm into a cache folder outside the
# repository (UNMASK_SHOT_CACHE, default ~/.cache/unmask-vscode-shot) the first time (a few
# minutes: code-server's native modules are built there). Needs Node 20 (code-server 4.100 is
# built for it), Chromium, ripgrep and a C++ toolchain with the headers code-server builds
# against; on Debian:
#   apt-get install -y chromium ripgrep build-essential pkg-config python3 \
#     libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev
# UNMASK_TEST_MODEL=FOLDER serves that model instead of the built-in one. A frame of the block
# mid-denoise (dim mask glyphs beside resolved text) is saved too, as vscode-denoising.png
# beside OUT.png, or as SHOT_DENOISE=FRAME.png (SHOT_DENOISE= for none). SHOT_DEBUG=1
# keeps a PNG of each stage, the workspace and its logs, and traces the LSP traffic.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="$(realpath -m "${1:-$HERE/vscode.png}")"
export SHOT_DENOISE="${SHOT_DENOISE-$(dirname "$OUT")/vscode-denoising.png}"
SOURCE="$(realpath "${2:-$REPO/diffusion/bench_input.py}")"
LINE="${3:-}"
if [ -z "$LINE" ] && [ $# -lt 2 ]; then
  LINE=294
elif [ -z "$LINE" ]; then # the first blank, indented line: a function body to fill
  LINE="$(grep -n -m1 -E '^[[:space:]]+$' "$SOURCE" | cut -d: -f1)"
  [ -n "$LINE" ] || { echo "no blank indented line in $SOURCE: give LINE" >&2; exit 1; }
fi
CACHE="$(realpath -m "${UNMASK_SHOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unmask-vscode-shot}")"
CODE_SERVER_VERSION=4.100.3 # VS Code 1.100; the last code-server line that runs on Node 20
PUPPETEER_VERSION=24.43.1
VSCE_VERSION=3.9.2

missing=()
for tool in node npm make g++ pkg-config python3 rg curl setsid; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[ -n "$CHROMIUM" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} (see the apt-get line at the top of $0)" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" != 20 ]; then
  echo "code-server $CODE_SERVER_VERSION needs Node 20 (this is $(node --version))" >&2
  exit 1
fi
UNMASK="$REPO/.venv/bin/unmask"
[ -x "$UNMASK" ] || { echo "no $UNMASK: install the server first (see the README)" >&2; exit 1; }

# ---------------------------------------------------------------- tools, once per cache
CS="$CACHE/node_modules/code-server"
STAMP="$CACHE/.installed-$CODE_SERVER_VERSION-$PUPPETEER_VERSION-$VSCE_VERSION"
if [ ! -e "$STAMP" ]; then
  echo "installing code-server $CODE_SERVER_VERSION into $CACHE (once; a few minutes)" >&2
  rm -rf "$CACHE/node_modules" "$CACHE/package.json" "$CACHE/package-lock.json"
  mkdir -p "$CACHE"
  echo '{"private": true}' > "$CACHE/package.json"
  # Without its install scripts: code-server's postinstall would fetch ripgrep from GitHub.
  # Its steps are done here instead, with the system's rg.
  if ! (
    cd "$CACHE" &&
      npm install --ignore-scripts --no-audit --no-fund \
        "code-server@$CODE_SERVER_VERSION" "puppeteer-core@$PUPPETEER_VERSION" "@vscode/vsce@$VSCE_VERSION" &&
      npm rebuild argon2 &&
      cd "$CS/lib/vscode" &&
      npm install --omit=dev --ignore-scripts --no-audit --no-fund &&
      mkdir -p node_modules/@vscode/ripgrep/bin &&
      ln -sfn "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg &&
      npm_config_yes=true npm rebuild && # the native modules (node-pty runs node-gyp through npx)
      ln -sfn node_modules node_modules.asar &&
      ln -sfn code-linux.sh bin/remote-cli/code-server &&
      ln -sfn browser-linux.sh bin/helpers/browser.sh &&
      cd extensions &&
      npm install --omit=dev --no-audit --no-fund
  ) > "$CACHE/install.log" 2>&1; then
    tail -n 40 "$CACHE/install.log" >&2
    echo "installing code-server failed (log: $CACHE/install.log)" >&2
    exit 1
  fi
  touch "$STAMP"
fi

# ---------------------------------------------------------------- a fresh run
WORK="$(mktemp -d)"
CS_PID=""
cleanup() {
  if [ -n "$CS_PID" ]; then
    kill -- -"$CS_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- -"$CS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- -"$CS_PID" 2>/dev/null || true
  fi
  if [ -n "${SHOT_DEBUG:-}" ]; then echo "workspace kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# code-server writes its config under XDG_CONFIG_HOME: keep it in the run folder
export XDG_CONFIG_HOME="$WORK/xdg/config" XDG_DATA_HOME="$WORK/xdg/data" XDG_CACHE_HOME="$WORK/xdg/cache"
mkdir -p "$WORK/project" "$WORK/user/User" "$WORK/extensions" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"
cp "$SOURCE" "$WORK/project/"
FILE="$WORK/project/$(basename "$SOURCE")"

# The extension, packaged from a copy of its sources (npm ci from the lock file, tsc by vsce).
mkdir -p "$WORK/ext"
(cd "$REPO/editor_clients/vscode" && cp -r package.json package-lock.json tsconfig.json .vscodeignore \
  LICENSE README.md src "$WORK/ext/")
(
  cd "$WORK/ext" &&
    npm ci --no-audit --no-fund --loglevel=error &&
    "$CACHE/node_modules/.bin/vsce" package --allow-missing-repository --skip-license --no-dependencies -o unmask.vsix &&
    node "$CS/out/node/entry.js" --user-data-dir "$WORK/user" --extensions-dir "$WORK/extensions" \
      --install-extension "$WORK/ext/unmask.vsix"
) > "$WORK/extension.log" 2>&1 || { cat "$WORK/extension.log" >&2; exit 1; }

COMMAND=("$UNMASK" serve)
[ -z "${UNMASK_TEST_MODEL:-}" ] || COMMAND+=(--model "$UNMASK_TEST_MODEL")
python3 - "$WORK/user/User/settings.json" "${COMMAND[@]}" <<'PY'
import json, os, sys
settings = {
    "unmask.server.command": sys.argv[2:],
    "editor.inlineSuggest.enabled": True,
    "editor.minimap.enabled": False,
    "editor.stickyScroll.enabled": False,
    "editor.fontSize": 14,
    "workbench.colorTheme": "Default Dark Modern",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "security.workspace.trust.enabled": False,
    "extensions.ignoreRecommendations": True,
    "extensions.autoCheckUpdates": False,
    "update.mode": "none",
    "telemetry.telemetryLevel": "off",
    "chat.commandCenter.enabled": False,
    "git.enabled": False,
}
if os.environ.get("SHOT_DEBUG"):
    settings["unmask.trace.server"] = "messages"
with open(sys.argv[1], "w") as f:
    json.dump(settings, f, indent=2)
PY

EXTRA=()
[ -z "${SHOT_DEBUG:-}" ] || EXTRA=(--log trace)
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# its own process group, so that the cleanup also ends the extension host and the server
setsid node "$CS/out/node/entry.js" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry \
  --disable-update-check --disable-workspace-trust --disable-getting-started-override \
  --user-data-dir "$WORK/user" --extensions-dir "$WORK/extensions" "${EXTRA[@]}" "$WORK/project" \
  > "$WORK/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$CS_PID" 2>/dev/null || { cat "$WORK/code-server.log" >&2; exit 1; }
  sleep 0.2
done

mkdir -p "$(dirname "$OUT")"
SHOT_NODE_MODULES="$CACHE/node_modules" CHROMIUM="$CHROMIUM" \
  node "$HERE/vscode_shot.mjs" "http://127.0.0.1:$PORT/?folder=$WORK/project" "$FILE" "$LINE" "$OUT"
