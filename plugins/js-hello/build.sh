#!/usr/bin/env bash
# Builds this plugin with componentize-js (see ../js-build.sh).
exec bash "$(dirname "$0")/../js-build.sh" "$(dirname "$0")"
