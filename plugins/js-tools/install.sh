# Sourced by plugins/js-build.sh and plugins/sdk-js/test.sh, with $root set
# to the repository: `js_tools SKIPPING` installs plugins/js-tools's npm
# packages (componentize-js, sql.js) into target/js, once per
# package-lock.json, and leaves $tools pointing there and the install lock
# (fd 9) held, since tests build and install concurrently. Without Node.js
# and npm it exits 3 with a notice that SKIPPING is skipped.
js_tools() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "notice: Node.js and npm are not installed; skipping $1" >&2
        exit 3
    fi
    tools=$root/target/js
    mkdir -p "$tools" "$root/target/guests"
    exec 9>"$root/target/guests/js.lock"
    flock 9
    if ! cmp -s "$root/plugins/js-tools/package-lock.json" "$tools/package-lock.json" \
        || [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ] \
        || [ ! -d "$tools/node_modules/sql.js" ]; then
        cp "$root/plugins/js-tools/package.json" "$root/plugins/js-tools/package-lock.json" "$tools/"
        (cd "$tools" && npm ci --silent --no-audit --no-fund >&2)
    fi
}
