#!/usr/bin/env bash
# Builds this plugin with componentize-js (see ../js-build.sh), keeping the
# engine's clocks: the notes' timestamps come from Date.now().
exec bash "$(dirname "$0")/../js-build.sh" "$(dirname "$0")" clocks
