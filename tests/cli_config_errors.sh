#!/usr/bin/env bash
# resnet-train's config errors: exit code 2 and one line naming the key (the command-line contract: ARCHITECTURE.md, docs/usage.md).
set -u
bin=$1
configs=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

expect() {  # expect <name> <exit code> <text in stderr> -- <args...>
  local name=$1 code=$2 text=$3
  shift 4
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" != "$code" ] || ! grep -qF -- "$text" "$tmp/err"; then
    echo "FAIL $name: rc=$rc (want $code), stderr: $(cat "$tmp/err")"
    fails=$((fails + 1))
  elif [ "$code" = 2 ] && [ "$(wc -l <"$tmp/err")" != 1 ]; then
    echo "FAIL $name: error is not one line: $(cat "$tmp/err")"
    fails=$((fails + 1))
  else
    echo "ok   $name"
  fi
}

echo '{"model": {"depth": 20, "colour": "red"}}' >"$tmp/unknown.json"
echo '{"model": {"depth": "twenty"}}' >"$tmp/type.json"
echo '{"model": {"depth": 21}}' >"$tmp/depth.json"
echo '{"model": {"depth": 20' >"$tmp/broken.json"
echo '{"model": {"depth": 20}}' >"$tmp/good.json"

expect unknown-key 2 "model.colour: unknown key" -- --config "$tmp/unknown.json" --dry-run
expect wrong-type 2 "model.depth: expected an integer" -- --config "$tmp/type.json" --dry-run
expect invalid-depth 2 "model.depth: 21 is not" -- --config "$tmp/depth.json" --dry-run
expect broken-json 2 "broken.json: invalid JSON" -- --config "$tmp/broken.json" --dry-run
expect missing-file 2 "missing.json: cannot open" -- --config "$tmp/missing.json" --dry-run
expect set-unknown 2 "train.lrr: unknown key" -- --config "$tmp/good.json" --set train.lrr=0.1 --dry-run
expect set-depth 2 "model.depth: 57 is not" -- --config "$tmp/good.json" --set model.depth=57 --dry-run
expect no-config 2 "config" -- --dry-run

# A good config prints the parameter count and the resolved config, and writes nothing.
(cd "$tmp" && "$bin" --config good.json --set model.depth=56 --dry-run >"$tmp/dry.json" 2>"$tmp/err")
if [ $? = 0 ] && grep -q '"parameters": 853018' "$tmp/dry.json" && grep -q '"shortcut": "A"' "$tmp/dry.json" \
   && [ "$(ls "$tmp" | sort | tr '\n' ' ')" = "broken.json depth.json dry.json err good.json out type.json unknown.json " ]; then
  echo "ok   dry-run"
else
  echo "FAIL dry-run: $(cat "$tmp/dry.json" "$tmp/err"; ls "$tmp")"; fails=$((fails + 1))
fi

# Files that are not configs at all: a folder, a number JSON cannot hold (both exit 2, named).
mkdir "$tmp/folder.json"
echo '{"model": {"depth": 1e400}}' >"$tmp/huge.json"
expect folder 2 "folder.json: is a folder" -- --config "$tmp/folder.json" --dry-run
expect huge-number 2 "huge.json: invalid JSON" -- --config "$tmp/huge.json" --dry-run
expect set-below-number 2 "--set model.depth.x=1: model.depth is not an object" -- \
  --config "$tmp/good.json" --set model.depth.x=1 --dry-run

# A name that would put the default run folder outside runs/; --allow-change without --resume.
expect name-escapes 2 "name: \"../../etc\" is not a plain folder name" -- --config "$tmp/good.json" --set name=../../etc
expect allow-change-new-run 2 "--allow-change: only with --resume" -- \
  --config "$tmp/good.json" --set train.iterations=1 --allow-change train.batch_size --out "$tmp/never"
[ -e "$tmp/never" ] && { echo "FAIL allow-change-new-run: made $tmp/never"; fails=$((fails + 1)); }

# Every shipped config resolves.
for c in "$configs"/*.json; do
  [ -e "$c" ] || continue
  if "$bin" --config "$c" --dry-run >/dev/null 2>"$tmp/err"; then echo "ok   config $(basename "$c")"
  else echo "FAIL config $(basename "$c"): $(cat "$tmp/err")"; fails=$((fails + 1)); fi
done
exit $((fails > 0))
