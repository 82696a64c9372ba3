#!/usr/bin/env bash
# A small `fleet sim bench` run (the capacity-planning benchmark) with structural checks of its
# JSON and HTML reports: every BundleDeployment became Ready, before and after the update, and
# every section of the report is there. No timing is asserted: this runs on loaded CI machines.
# Usage: scripts/sim-bench.sh path/to/fleet. Ends with `N passed, M failed`.
set -uo pipefail
FLEET=${1:?usage: sim-bench.sh path/to/fleet}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0
check() {
  local name=$1; shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1)); echo "ok: $name"
  else
    failed=$((failed + 1)); echo "FAILED: $name"; sed 's/^/    /' "$WORK/out" | tail -n 20
  fi
}

check "--clusters 0 is refused before any work" \
  bash -c "! '$FLEET' sim bench --clusters 0 --quiet >'$WORK/zero' 2>&1 && grep -q -- '--clusters must be at least 1' '$WORK/zero'"
check "absurd sizes are refused with the memory they need" \
  bash -c "! '$FLEET' sim bench --clusters 900000 --bundles 90000 --quiet >'$WORK/big' 2>&1 && grep -q 'GiB of memory' '$WORK/big'"
# The store measurement alone outlasts a one-second limit, so this run always stops before
# its first cluster registers: the report must still be written, and say where it stopped.
check "a run stopped by --time-limit writes a partial report naming the stage" bash -c "
  ! '$FLEET' sim bench --clusters 20 --bundles 2 --quiet --time-limit 1 --report '$WORK/partial.json' \
      >'$WORK/partial.out' 2>'$WORK/partial.err' &&
  grep -q 'stage registration stopped' '$WORK/partial.err' &&
  grep -q 'INCOMPLETE: stage registration' '$WORK/partial.out' &&
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); i=r[\"incomplete\"]; assert i[\"stage\"]==\"registration\" and i[\"expected\"]==20 and \"--time-limit\" in i[\"reason\"], i; assert r[\"stages\"]==[], r[\"stages\"]' '$WORK/partial.json'"
check "50 clusters × 5 bundles run to the end" \
  "$FLEET" sim bench --clusters 50 --bundles 5 --quiet --idle-seconds 1 \
    --report "$WORK/report.json" --html "$WORK/report.html"
check "the JSON report has every section and all 250 BundleDeployments Ready" python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert "incomplete" not in r, r.get("incomplete")
for key in ["config", "machine", "store_writes_per_second", "stages", "rollout_writes", "bundle_deployments", "api",
            "storage", "cpu_seconds", "peak_rss_bytes", "workers", "targets", "bottleneck"]:
    assert key in r, f"missing {key}"
names = [s["name"] for s in r["stages"]]
assert names == ["gitrepo_to_bundle", "bundle_to_bundledeployment", "bundledeployment_to_ready",
                 "update_to_ready", "update_commit_to_bundle", "update_bundle_to_bundledeployment",
                 "update_bundledeployment_to_ready"], names
for s in r["stages"]:
    for k in ["objects", "p50_ms", "p95_ms", "max_ms", "total_seconds", "objects_per_second",
              "write_rate_fraction_of_store"]:
        assert k in s, f"stage {s['name']} lacks {k}"
    assert s["p50_ms"] <= s["p95_ms"] <= s["max_ms"], s
bd = r["bundle_deployments"]
assert bd["expected"] == 250 and bd["created"] == 250, bd
assert bd["ready"] == 250 and bd["ready_after_update"] == 250, bd
assert r["stages"][0]["objects"] == 5 and r["stages"][3]["objects"] == 250, r["stages"]
assert r["stages"][4]["objects"] == 5, r["stages"][4]
assert r["stages"][5]["objects"] == 250 and r["stages"][6]["objects"] == 250, r["stages"][5:]
assert r["store_writes_per_second"] > 0
verbs = r["api"]["upstream_by_verb"]
assert verbs.get("create", 0) + verbs.get("patch", 0) >= 250, verbs
assert r["api"]["upstream_by_resource"].get("bundledeployments", 0) >= 250, r["api"]["upstream_by_resource"]
assert r["storage"]["upstream_objects"] > 0 and r["storage"]["largest_object"]["bytes"] > 0
assert {"controller", "agents"} <= set(r["cpu_seconds"]), r["cpu_seconds"]
assert all("met" in t for t in r["targets"])
PY
check "the HTML report is self-contained with SVG plots" python3 - "$WORK/report.html" <<'PY'
import sys
html = open(sys.argv[1]).read()
assert html.startswith("<!DOCTYPE html>") and "<svg" in html
assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), "external reference"
assert "https://" not in html and "<script" not in html
PY

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
