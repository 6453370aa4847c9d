#!/usr/bin/env bash
# Builds this plugin with componentize-py (see ../python-build.sh).
exec bash "$(dirname "$0")/../python-build.sh" "$(dirname "$0")"
