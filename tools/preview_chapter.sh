#!/usr/bin/env bash
# Build the book with a stub intro and only the named chapters, in a scratch copy of the repository,
# with the same settings as `make book` (-W -n --keep-going). For working on one chapter while
# others are in progress. Usage: tools/preview_chapter.sh l2_transitions [more chapters...]; name
# also the chapters the first one links to (arrhenius_escape links to l2_transitions).
# The HTML lands in /tmp/preview_<first chapter>/_build/html.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 CHAPTER_STEM [CHAPTER_STEM...]" >&2; exit 2; }
work="/tmp/preview_$1"
mkdir -p "$work"
rm -rf "$work/src" && mkdir -p "$work/src"
(cd "$repo" && tar --exclude=./.venv --exclude=./_build --exclude=./.git -cf - .) | tar -xf - -C "$work/src"
{
  echo "format: jb-book"
  echo "root: book/intro"
  echo "parts:"
  echo "  - caption: Chapters"
  echo "    numbered: true"
  echo "    chapters:"
  for stem in "$@"; do echo "      - file: book/$stem"; done
  echo "  - caption: Back matter"
  echo "    chapters:"
  echo "      - file: book/references"
} > "$work/src/_toc.yml"
# The real intro links to every chapter; the preview gets a stub so that -n has nothing to miss.
printf '# Preview\n\nA preview build of %s.\n' "$*" > "$work/src/book/intro.md"
cd "$work/src"
export PHASEBOOK_LEDGER_DIR="$work/ledgers"   # leave the main build's ledgers alone
JUPYTER_PREFER_ENV_PATH=1 "$repo/.venv/bin/jupyter-book" build . -W -n --keep-going --path-output "$work"
echo "HTML: $work/_build/html/book/$1.html"
