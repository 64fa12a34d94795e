# Sourced by the bench scripts: oha, pinned, built from crates.io into bench/.tools (its own
# target dir: no lock on the workspace's). Sets OHA.
OHA_VERSION=1.16.0
OHA="$BENCH_DIR/.tools/bin/oha"
if ! { [ -x "$OHA" ] && "$OHA" --version 2>/dev/null | grep -q " $OHA_VERSION"; }; then
    echo "installing oha $OHA_VERSION (cargo install --locked)" >&2
    cargo install oha --version "$OHA_VERSION" --locked --root "$BENCH_DIR/.tools" \
        --target-dir "$BENCH_DIR/.tools/build"
fi
