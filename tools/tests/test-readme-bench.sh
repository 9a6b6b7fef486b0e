#!/usr/bin/env bash
# README.md's generated benchmark figures (tools/bench/readme.py, `make readme-bench`).
# No network, no root: files only.
#
#   docs/BENCH.md + docs/BENCH-BOTTLENECK.md --readme.py--> README.md's
#   <!-- bench:NAME begin --> ... <!-- bench:NAME end --> blocks
#
# 1. README.md has every block the tool knows, each pair once.
# 2. The tool fills a copy of README.md from the checked-in reports with exit 0, the copy
#    equals README.md (the checked-in README is up to date: --check agrees), and a second
#    run changes nothing.
# 3. Figures land where they belong: the clean-link goodput of kcpx/default from
#    BENCH.md's goodput table appears in the kcptun-table block.
# 4. A README without one of the markers, or reports without a figure a block needs,
#    make the tool exit 1 naming the block, and the block keeps its old text.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tools/tests/lib.sh
test_tmp readme-bench
TOOL=tools/bench/readme.py
BENCH=docs/BENCH.md
BN=docs/BENCH-BOTTLENECK.md

# 1. markers
names=$(python3 -c 'import sys; sys.path.insert(0, "tools/bench"); import readme
print(" ".join(readme.BLOCKS))')
[ -n "$names" ] || bad "readme.py lists no blocks"
for n in $names; do
	b=$(grep -c "<!-- bench:$n begin -->" README.md)
	e=$(grep -c "<!-- bench:$n end -->" README.md)
	if [ "$b" = 1 ] && [ "$e" = 1 ]; then ok "README.md marks block $n"; else
		bad "README.md: block $n has $b begin and $e end markers"
	fi
done

# 2. runs on the checked-in reports, up to date, idempotent
cp README.md "$TMP/README.md"
if python3 "$TOOL" "$TMP/README.md" "$BENCH" "$BN" >"$TMP/out" 2>&1; then
	ok "readme.py fills README.md from the checked-in reports"
else
	bad "readme.py exit $?: $(cat "$TMP/out")"
fi
if cmp -s README.md "$TMP/README.md"; then ok "README.md is up to date with docs/"; else
	bad "README.md differs from what docs/ says (make readme-bench):"
	diff README.md "$TMP/README.md" | head -20
fi
if python3 "$TOOL" --check README.md "$BENCH" "$BN" 2>"$TMP/out"; then
	ok "--check agrees"
else
	bad "--check: $(cat "$TMP/out")"
fi
cp "$TMP/README.md" "$TMP/again.md"
python3 "$TOOL" "$TMP/again.md" "$BENCH" "$BN" >/dev/null 2>&1
if cmp -s "$TMP/README.md" "$TMP/again.md"; then ok "a second run changes nothing"; else
	bad "a second run changed README.md"
fi

# 3. a figure from BENCH.md's goodput table in its block
clean=$(awk -F'|' '/^## Goodput/ { g = 1 } g && $2 ~ /^ 0 ms \/ 0 % $/ { gsub(/ /, "", $5);
	print $5; exit }' "$BENCH")
block=$(sed -n '/<!-- bench:kcptun-table begin -->/,/<!-- bench:kcptun-table end -->/p' \
	"$TMP/README.md")
if [ -n "$clean" ] && echo "$block" | grep -q "| goodput, clean link (0 ms) | $clean vs "; then
	ok "kcpx/default's clean-link goodput ($clean Mbit/s) is in the table"
else
	bad "kcpx/default's clean-link goodput '$clean' not in the kcptun-table block"
fi

# 4. failures are named and leave the text alone
sed '/<!-- bench:rss begin -->/d' README.md >"$TMP/nomark.md"
if python3 "$TOOL" "$TMP/nomark.md" "$BENCH" "$BN" >"$TMP/out" 2>&1; then
	bad "a README without the rss begin marker: exit 0"
elif grep -q "bench:rss" "$TMP/out"; then
	ok "a missing marker is an error naming the block"
else
	bad "a missing marker: the message does not name it: $(cat "$TMP/out")"
fi
# the reports without the memory table: the rss block keeps its text, exit 1
sed '/^## Memory:/,/^## /{/^|/d}' "$BENCH" >"$TMP/BENCH.md"
cp README.md "$TMP/r2.md"
sed -i 's/peaked at [0-9.]* MiB/peaked at OLD MiB/' "$TMP/r2.md"
if python3 "$TOOL" "$TMP/r2.md" "$TMP/BENCH.md" "$BN" >"$TMP/out" 2>&1; then
	bad "reports without the memory table: exit 0"
elif grep -q "block rss" "$TMP/out" && grep -q "peaked at OLD MiB" "$TMP/r2.md"; then
	ok "a block without its figures is named and keeps its text"
else
	bad "a block without its figures: $(cat "$TMP/out")"
fi

[ "$fails" -eq 0 ] && echo "all readme-bench checks passed"
[ "$fails" -eq 0 ]
