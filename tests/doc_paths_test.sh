#!/usr/bin/env bash
# The docs send readers only to files that exist: every repository path that README.md,
# ARCHITECTURE.md and docs/*.md name (src/..., tests/..., a markdown link, ...) is in the tree.
# Paths with placeholders (<name>, {h,cpp}, *) and run-folder outputs are not checked. The check is
# first seen failing on a document naming a missing file.
#   doc_paths_test.sh PROJECT_DIR
set -euo pipefail
root=${1:?usage: doc_paths_test.sh PROJECT_DIR}
check() {  # check ROOT DOC...: prints "DOC: PATH" for each missing path; exit 1 if any
  /usr/bin/python3 - "$@" <<'PY'
import os, re, sys
root, docs = sys.argv[1], sys.argv[2:]
top = r"(?:src|tests|scripts|docs|bench|python|configs|\.ci)"
pattern = re.compile(r"(?<![\w./-])(" + top + r"/[A-Za-z0-9_./-]*[A-Za-z0-9_])|\]\(([^)#\s]+)")
missing = []
for doc in docs:
    text = open(os.path.join(root, doc), encoding="utf-8").read()
    base = os.path.dirname(doc)
    for m in pattern.finditer(text):
        if m.group(1):
            path, rel = m.group(1), root
            end = m.end(1)
            if text[end:end + 1] in "<{*" or text[end:end + 2] == "/<":
                continue  # a placeholder: src/analysis/<name>.cpp, src/util/folder.{h,cpp}
        else:
            path = m.group(2)
            if re.match(r"[a-z]+:", path):
                continue  # a URL
            rel = os.path.join(root, base)
        if not os.path.lexists(os.path.join(rel, path)):
            missing.append(f"{doc}: {path}")
for line in sorted(set(missing)):
    print(line)
sys.exit(1 if missing else 0)
PY
}
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/src" "$probe/docs"
touch "$probe/src/there.cpp"
printf 'See src/there.cpp, src/gone.cpp, src/<name>.cpp and [the rest](docs/none.md).\n' >"$probe/README.md"
out=$(check "$probe" README.md || true)
[ "$out" = $'README.md: docs/none.md\nREADME.md: src/gone.cpp' ] ||
  { echo "doc_paths_test: the probe was not judged as expected: $out" >&2; exit 1; }
cd "$root"
docs=(README.md ARCHITECTURE.md docs/*.md)
if ! out=$(check "$root" "${docs[@]}"); then
  echo "$out" | sed 's/^/doc_paths_test: names a missing path: /' >&2
  exit 1
fi
echo "doc_paths_test: the paths in ${#docs[@]} documents exist"
