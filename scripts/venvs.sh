#!/usr/bin/env bash
# Create .venv/py311, .venv/py312, .venv/py313, install the development tools
# into each, build the extension wheel once and install it into every venv.
#
# Idempotent and quick when nothing changed: venvs are only created when
# missing or broken, tools only installed when the requirement list changed,
# and the wheel only reinstalled when its contents changed.
#
# Usage: scripts/venvs.sh [--no-build]
#   --no-build       create venvs and install tools only (no Rust build)
# Environment:
#   PYTHONS          versions to set up (default: "3.11 3.12 3.13")
#   CARGO_BUILD_JOBS passed through to cargo (default: 2)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

BUILD=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "venvs.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

PYTHONS=${PYTHONS:-"3.11 3.12 3.13"}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off

# The tools every venv gets. Changing this list reinstalls on the next run.
REQUIREMENTS=("maturin>=1.5,<2" "pytest>=8" "pexpect>=4.8" "hypothesis>=6" "hypothesmith>=0.3" "numpy>=1.26")
# Optional: only its benchmark workloads are used by benches/.
OPTIONAL_REQUIREMENTS=("pyperformance")
# Linting tools, installed into the py311 venv only.
LINT_REQUIREMENTS=("ruff==0.17.*")  # pinned minor: ruff changes its style at minors
LINT_VENV=py311

WHEEL_DIR=$ROOT/target/wheelhouse

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# find_python 3.11 -> prints the path of a working CPython 3.11 interpreter
find_python() {
    local want=$1 root cand
    local -a cands=()
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null || true)
    fi
    root=${root:-${PYENV_ROOT:-$HOME/.pyenv}}
    if [[ -d $root/versions ]]; then
        # highest patch release first
        while IFS= read -r cand; do
            cands+=("$cand/bin/python")
        done < <(compgen -G "$root/versions/$want.[0-9]*" | sort -rV)
    fi
    if cand=$(command -v "python$want" 2>/dev/null); then
        cands+=("$cand")
    fi
    for cand in "${cands[@]}"; do
        [[ -x $cand ]] || continue
        if "$cand" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" \
            >/dev/null 2>&1; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    return 1
}

# venv_ok DIR VERSION -> the venv exists and runs the right Python
venv_ok() {
    [[ -x $1/bin/python ]] &&
        "$1/bin/python" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$2' else 1)" \
            >/dev/null 2>&1
}

# deps_stamp NAME -> the text recorded once the tools of that venv are installed
deps_stamp() {
    local extra=""
    [[ $1 == "$LINT_VENV" ]] && extra=" ${LINT_REQUIREMENTS[*]}"
    printf 'v1 %s | %s%s\n' "${REQUIREMENTS[*]}" "${OPTIONAL_REQUIREMENTS[*]}" "$extra"
}

# wheel_digest WHEEL -> a digest of the wheel's contents (its RECORD), stable
# across rebuilds that change nothing but zip timestamps and the generated SBOM
# (which carries a timestamp and a random serial number)
wheel_digest() {
    "$VENV_PY_ANY" - "$1" <<'EOF'
import hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    rec = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
    if rec:
        lines = z.read(rec[0]).decode().splitlines()
        data = "\n".join(x for x in lines if ".dist-info/sboms/" not in x).encode()
    else:
        data = open(sys.argv[1], "rb").read()
print(hashlib.sha256(data).hexdigest())
EOF
}

# ---------------------------------------------------------------- interpreters
declare -A PY=()
missing=()
for v in $PYTHONS; do
    if p=$(find_python "$v"); then
        PY[$v]=$p
    else
        missing+=("$v")
    fi
done
if ((${#missing[@]})); then
    die "no CPython ${missing[*]} found (looked in \$(pyenv root)/versions/X.Y.* and python X.Y on PATH)"
fi

# ------------------------------------------------------------- venvs and tools
mkdir -p .venv
VENV_PY_ANY=""
for v in $PYTHONS; do
    name=py${v/./}
    venv=.venv/$name
    if ! venv_ok "$venv" "$v"; then
        say "$name: creating venv with ${PY[$v]}"
        rm -rf "$venv"
        "${PY[$v]}" -m venv "$venv"
    fi
    VENV_PY_ANY=${VENV_PY_ANY:-$ROOT/$venv/bin/python}

    stamp=$venv/.resurrect-deps
    want=$(deps_stamp "$name")
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        say "$name: tools up to date"
        continue
    fi
    say "$name: installing ${REQUIREMENTS[*]}"
    "$venv/bin/python" -m pip install -q "${REQUIREMENTS[@]}"
    if [[ $name == "$LINT_VENV" ]]; then
        say "$name: installing ${LINT_REQUIREMENTS[*]}"
        "$venv/bin/python" -m pip install -q "${LINT_REQUIREMENTS[@]}"
    fi
    say "$name: installing ${OPTIONAL_REQUIREMENTS[*]} (optional)"
    if ! "$venv/bin/python" -m pip install -q "${OPTIONAL_REQUIREMENTS[@]}"; then
        warn "$name: could not install ${OPTIONAL_REQUIREMENTS[*]}; benchmarks that need it will be skipped"
    fi
    printf '%s\n' "$want" >"$stamp"
done

if ((!BUILD)); then
    say "skipping the extension build (--no-build)"
    exit 0
fi

# ------------------------------------------------------ build and install wheel
# pyo3 is configured with abi3-py311, so one wheel serves 3.11, 3.12 and 3.13:
# build it once with the first venv and install that same file everywhere.
# Should the wheel come out version-specific, build one per interpreter instead.
build_wheel() { # build_wheel VENV OUTDIR -> prints the wheel's path
    local venv=$1 out=$2 whl
    rm -rf "$out"
    mkdir -p "$out"
    "$venv/bin/maturin" build --release --interpreter "$ROOT/$venv/bin/python" \
        --out "$out" >&2 || return 1
    whl=$(compgen -G "$out/*.whl" | head -n 1) || true
    [[ -n $whl ]] || {
        echo "maturin produced no wheel in $out" >&2
        return 1
    }
    printf '%s\n' "$whl"
}

install_wheel() { # install_wheel NAME VENV WHEEL
    local name=$1 venv=$2 whl=$3 digest stamp=$2/.resurrect-wheel
    digest=$(wheel_digest "$whl")
    if [[ -f $stamp && $(cat "$stamp") == "$digest" ]] &&
        "$venv/bin/python" -c "import resurrect._core" >/dev/null 2>&1; then
        say "$name: resurrect up to date"
        return 0
    fi
    say "$name: installing $(basename "$whl")"
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$whl"
    printf '%s\n' "$digest" >"$stamp"
}

read -r -a versions <<<"$PYTHONS"
first=py${versions[0]/./}
say "building the extension wheel (release) with .venv/$first"
whl=$(build_wheel ".venv/$first" "$WHEEL_DIR/$first") || die "maturin build failed"

if [[ $(basename "$whl") == *-abi3-* ]]; then
    for v in "${versions[@]}"; do
        install_wheel "py${v/./}" ".venv/py${v/./}" "$whl"
    done
else
    warn "$(basename "$whl") is not an abi3 wheel; building one per interpreter"
    install_wheel "$first" ".venv/$first" "$whl"
    for v in "${versions[@]:1}"; do
        name=py${v/./}
        say "building the extension wheel (release) with .venv/$name"
        w=$(build_wheel ".venv/$name" "$WHEEL_DIR/$name") || die "maturin build failed for $name"
        install_wheel "$name" ".venv/$name" "$w"
    done
fi
say "venvs ready: $(for v in "${versions[@]}"; do printf '.venv/py%s ' "${v/./}"; done)"
