# Sourced by the CLI test scripts (tests/test_cli_*.sh), which keep the counters pass and fail
# and a scratch folder $tmp.
# ok / bad MESSAGE: count a pass / a failure (printed).
# check CONDITION MESSAGE: eval CONDITION; a pass, or a failure printing MESSAGE.
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

# expect CODE PATTERN -- command...   the command exits with CODE, its stderr matches PATTERN and
# is at most 2 lines (a short message naming the file, line, field or flag; no crash trace).
expect() {
  local code=$1 pat=$2; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -q -- "$pat" "$tmp/err"; then
    fail=$((fail+1)); echo "FAIL: [$*] rc=$rc (want $code), stderr: $(head -c 300 "$tmp/err")"
  elif [ "$(wc -l < "$tmp/err")" -gt 2 ]; then
    fail=$((fail+1)); echo "FAIL: [$*] error is not short: $(cat "$tmp/err")"
  else pass=$((pass+1)); fi
}
