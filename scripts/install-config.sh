#!/usr/bin/env bash
# `meson install` step (meson.build): install-config.sh SOURCE TARGET SHIPPED ...
# Installs each SOURCE as TARGET (under $DESTDIR when meson sets it) unless TARGET exists:
# configuration an administrator has edited survives a `meson install` over it. SHIPPED is
# where the same file is always installed, for comparing.
set -euo pipefail

if (($# % 3 != 0)); then
  echo "usage: ${0##*/} SOURCE TARGET SHIPPED [SOURCE TARGET SHIPPED ...]" >&2
  exit 2
fi
while (($#)); do
  source=$1 target=${DESTDIR:-}$2 shipped=${DESTDIR:-}$3
  shift 3
  if [[ -e $target || -L $target ]]; then
    echo "Keeping $target (it exists; the shipped version is $shipped)"
  else
    install -D -m 0644 "$source" "$target"
    echo "Installing $source to $target"
  fi
done
