#!/usr/bin/env bash
# Generates what a dynamic module needs from nginx's configure, for the installed nginx:
#   nginx/configure.sh NGINX_SRC MODULE_DIR OUTDIR
# NGINX_SRC is Debian's nginx-dev tree (/usr/share/nginx/src: configure, headers and conf_flags,
# the flags Debian's nginx was configured with, so that the module's signature matches it).
# configure writes into its working directory, so it runs in a copy under OUTDIR; the three
# generated files the module build uses are copied to OUTDIR.
set -euo pipefail
src=$1 mod=$2
mkdir -p "$3"
out=$(cd "$3" && pwd)
work="$out/ngx-src"
rm -rf "$work"
mkdir -p "$work"
cp -r "$src"/. "$work"/
cd "$work"
# shellcheck disable=SC1091
source ./conf_flags
if ! ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$mod" >configure.log 2>&1; then
    cat configure.log >&2
    echo "nginx/configure.sh: nginx's configure failed (log above)" >&2
    exit 1
fi
cp objs/ngx_auto_config.h objs/ngx_auto_headers.h objs/ngx_http_rl_module_modules.c "$out"/
