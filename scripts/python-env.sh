# shellcheck shell=bash
# Sourced by setup-host.sh and test.sh: where mlorch's virtual environment lives and which Python
# may build it. Bash functions only; sourcing it runs nothing.
#
#   MLORCH_VENV    the virtual environment (default: .venv in the checkout)
#   MLORCH_PYTHON  the interpreter to build it from (default: the first python3.X on PATH that
#                  is new enough)

MLORCH_CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# How long one interpreter may take to answer a version query (a broken shim must not hang us).
PYTHON_QUERY_TIMEOUT_S=20

mlorch_venv() {
    echo "${MLORCH_VENV:-$MLORCH_CHECKOUT/.venv}"
}

# The minimum Python version, read from pyproject.toml's requires-python (its one home).
min_python() {
    local found
    found="$(sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' \
        "$MLORCH_CHECKOUT/pyproject.toml")"
    echo "${found:-3.11}"
}

# version_at_least HAVE WANT: true when dotted version HAVE >= WANT (numeric, major.minor).
version_at_least() {
    local have_major have_minor want_major want_minor
    IFS=. read -r have_major have_minor _ <<<"$1"
    IFS=. read -r want_major want_minor _ <<<"$2"
    [[ "$have_major" =~ ^[0-9]+$ && "${have_minor:-0}" =~ ^[0-9]+$ ]] || return 1
    if ((have_major != want_major)); then
        ((have_major > want_major))
    else
        ((${have_minor:-0} >= ${want_minor:-0}))
    fi
}

# python_version PY: print PY's "major.minor", or fail when PY does not run.
python_version() {
    timeout "$PYTHON_QUERY_TIMEOUT_S" "$1" -c \
        'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# find_python: print the path of the interpreter that should build the venv and return 0, or
# print "VERSION PATH" of the best one seen (VERSION "none" when nothing runs) and return 1.
# MLORCH_PYTHON, when set, is the only candidate.
find_python() {
    local want candidates candidate path version seen="none"
    want="$(min_python)"
    if [ -n "${MLORCH_PYTHON:-}" ]; then
        candidates=("$MLORCH_PYTHON")
    else
        candidates=(python3 python3.14 python3.13 python3.12 python3.11)
    fi
    for candidate in "${candidates[@]}"; do
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        version="$(python_version "$path")" || continue
        if version_at_least "$version" "$want"; then
            echo "$path"
            return 0
        fi
        [ "$seen" != "none" ] || seen="$version $path"
    done
    echo "$seen"
    return 1
}
