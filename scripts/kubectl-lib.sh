# Helpers for scripts/kubectl-conformance.sh (sourced).
PASSED=0
FAILED=0

# check NAME COMMAND...: runs the command; passes when it exits 0.
check() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    PASSED=$((PASSED + 1)); echo "ok - $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL - $name"; sed 's/^/    /' <<<"$out" | tail -n 20
  fi
}

# expect_output PATTERN COMMAND...: the command succeeds and its output matches the regex.
expect_output() {
  local pattern=$1; shift
  local out
  out=$("$@" 2>&1) || { echo "command failed: $*"; echo "$out"; return 1; }
  grep -Eq -- "$pattern" <<<"$out" || { echo "output of '$*' does not match /$pattern/:"; echo "$out"; return 1; }
}

# expect_failure PATTERN COMMAND...: the command fails and its output matches the regex.
expect_failure() {
  local pattern=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "expected failure from: $*"; echo "$out"; return 1; fi
  grep -Eq -- "$pattern" <<<"$out" || { echo "error of '$*' does not match /$pattern/:"; echo "$out"; return 1; }
}

# eventually SECONDS COMMAND...: retries until the command succeeds.
eventually() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  while true; do
    "$@" >/dev/null 2>&1 && return 0
    ((SECONDS >= deadline)) && { "$@"; return 1; }
    sleep 0.3
  done
}

summary() {
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}
